"""The demo's bounded waits say how things stand while they wait (issue 15: "waiting up to
60 s" used to be followed by silence)."""

from __future__ import annotations

from gateway.demo import story
from gateway.tools import modelzoo


def test_a_wait_reports_the_traffic_while_it_waits(registry, monkeypatch, capsys) -> None:
    registry.register_version(story.MODEL, modelzoo.linear(4, 2, seed=1), actor="t")
    registry.register_version(story.MODEL, modelzoo.linear(4, 2, seed=2), actor="t")
    registry.set_weights(story.MODEL, {"1": 90, "2": 10}, {"2": "canary"}, actor="t")
    monkeypatch.setattr(story, "PROGRESS_EVERY_S", 0.0)  # every poll, not every 5 s
    looks = iter([False, False, True])
    assert story.Timeline(registry).wait("the test condition", lambda: next(looks), 60)
    out = capsys.readouterr().out
    assert "waiting up to 60 s for the test condition" in out
    assert "still waiting" in out and "v1 champion 90%, v2 canary 10%" in out
    assert "the test condition: after" in out
