"""The console's pages as functions (no server, no browser): what they say and when they
reload themselves."""

from __future__ import annotations

from gateway.console.pages import REFRESH_S, governor_page, model_page

REFRESH = f'<meta http-equiv="refresh" content="{REFRESH_S}">'


def _model(arms: list[dict[str, object]]) -> str:
    return model_page("credit", {"revision": "3", "arms": arms}, [], [], [], "watcher (viewer)")


def test_the_model_page_reloads_itself_while_a_rollout_is_in_progress() -> None:
    """Watching a ramp meant reloading the page by hand."""
    ramp = _model(
        [
            {"version": "1", "role": "champion", "weight": 0.9},
            {"version": "2", "role": "canary", "weight": 0.1},
        ]
    )
    assert REFRESH in ramp and 'id="refreshing"' in ramp
    settled = _model([{"version": "2", "role": "champion", "weight": 1.0}])
    assert "http-equiv" not in settled and "refreshing" not in settled


def test_the_governor_page_reloads_itself_while_it_ramps_a_candidate() -> None:
    status = {"policy_version": 2, "mode": "enforce", "candidate": "2", "step": 1,
              "steps": [10, 50]}  # fmt: skip
    assert REFRESH in governor_page("credit", status, [], "watcher (viewer)")
    for quiet in ({**status, "candidate": ""}, {**status, "paused": True}):
        assert "http-equiv" not in governor_page("credit", quiet, [], "watcher (viewer)")
