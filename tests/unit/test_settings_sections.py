"""Settings in sections: flat keys unchanged, each section a view of the same names that
validates its own fields, with the same SettingsError line as before."""

from __future__ import annotations

import dataclasses
import typing

import pytest

import gateway.sections as sections_module
from gateway.sections import (
    AccessSettings,
    ExplainSettings,
    FleetSettings,
    GovernorSettings,
    ListenSettings,
    MonitorSettings,
    ServingSettings,
    TracingSettings,
)
from gateway.settings import Settings, SettingsError

SECTIONS = {
    "listen": ListenSettings,
    "access": AccessSettings,
    "serving": ServingSettings,
    "monitor": MonitorSettings,
    "governor_section": GovernorSettings,
    "fleet_section": FleetSettings,
    "explain": ExplainSettings,
    "tracing": TracingSettings,
}


@pytest.mark.parametrize(("prop", "cls"), SECTIONS.items())
def test_a_section_views_flat_fields_of_the_same_name_and_type(prop: str, cls: type) -> None:
    flat = typing.get_type_hints(Settings)
    mine = typing.get_type_hints(cls, vars(sections_module))
    s = Settings(max_batch_size=7, monitor_window=99, explain_queue=3, fleet_outbox=5)
    section = getattr(s, prop)
    assert isinstance(section, cls) and getattr(s, prop) is section  # built once
    for f in dataclasses.fields(cls):
        assert f.name in flat, f"{cls.__name__}.{f.name} is not a setting"
        assert mine[f.name] == flat[f.name], f.name
        assert getattr(section, f.name) == getattr(s, f.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(section, dataclasses.fields(cls)[0].name, None)


def test_packages_read_their_section() -> None:
    s = Settings(max_batch_size=7, intra_op_threads=3, response_cache=("m=5",))
    assert s.serving.max_batch_size == 7
    assert s.serving.effective_intra_op_threads == s.effective_intra_op_threads == 3
    assert s.serving.response_cache_sizes == s.response_cache_sizes == {"m": 5}
    assert s.replace(max_batch_size=9).serving.max_batch_size == 9  # a new object, a new view


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"port": 70000}, "port must be in 0..65535, got 70000"),
        ({"tls_key": "k.pem"}, "tls_cert and tls_key must be given together"),
        ({"console_login_attempts": 0}, "console_login_attempts must be >= 1, got 0"),
        ({"max_batch_size": 0}, "max_batch_size must be >= 1, got 0"),
        ({"max_delay_us": -1}, "max_delay_us must be >= 0, got -1"),
        ({"tap_queue": 0}, "tap_queue must be >= 1, got 0"),
        ({"response_cache": ("m",)}, "response_cache: expected MODEL=ENTRIES"),
        ({"monitor_alpha": 1.0}, "monitor_alpha must be in (0, 1), got 1.0"),
        ({"feedback_ttl_s": 0.0}, "feedback_ttl_s must be > 0, got 0.0"),
        ({"fleet_lease_s": 1.0}, "fleet_lease_s must be >= fleet_publish_s"),
        ({"explain_processes": -1}, "explain_processes must be >= 0, got -1"),
        ({"explain_deadline_s": 0.0}, "explain_deadline_s must be > 0, got 0.0"),
        ({"otel_queue": 0}, "otel_queue must be >= 1, got 0"),
    ],
)
def test_each_section_refuses_its_own_bad_values_with_the_same_line(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(**changes)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    with pytest.raises(SettingsError):  # and the same from the environment
        Settings.load(environ={f"ONNXGATE_{k.upper()}": _env(v) for k, v in changes.items()})


def _env(value: object) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)
