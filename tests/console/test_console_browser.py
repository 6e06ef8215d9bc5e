"""The operator console in a real browser: Debian's chromium driven by Playwright.

A gateway runs a small version of the demo's story (a champion with a 20% canary under a
governor policy, a shadow, traffic whose first feature has shifted on the champion); the
test logs in as a viewer through the form and asserts what a person sees on each page.
Screenshots are saved under ``tests/artifacts/console/`` (git-ignored).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import numpy as np
import pytest
from shared import ADMIN_TOKEN, CONSOLE_ARTIFACTS, HOLDING_POLICY, admin_metadata, wait_for

from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway._proto import grpc_service_pb2 as pb
from gateway.monitoring.reference import build_version_profiles, onnx_runner
from gateway.tools import modelzoo
from registry.deployment import Arm, Role, Shadow

VIEWER_TOKEN = "viewer-token-for-the-console"
FEATURES = 8
SIZES = (FEATURES, 16, 3)


def _register(registry, version_seed: int, reference: np.ndarray | None, **kw: Any) -> str:
    data = modelzoo.mlp(SIZES, seed=version_seed, **kw)
    rec = registry.register_version("credit", data, actor="test", description="credit scorer")
    if reference is not None:
        profiles = build_version_profiles(rec.signature, reference, run=onnx_runner(data))
        registry.set_profile(
            "credit", rec.version, profiles.to_doc(), source="reference", actor="t"
        )
    return rec.version


def _send(gw, x: np.ndarray, version: str = "", rows: int = 50) -> None:
    stub = gw.stub()
    for start in range(0, len(x), rows):
        chunk = np.ascontiguousarray(x[start : start + rows], dtype=np.float32)
        req = pb.ModelInferRequest(model_name="credit", model_version=version)
        req.inputs.add(name="x", datatype="FP32", shape=list(chunk.shape))
        req.raw_input_contents.append(chunk.tobytes())
        stub.ModelInfer(req, timeout=30)


@pytest.fixture
def story(registry, make_gateway):
    rng = np.random.default_rng(5)
    reference = rng.standard_normal((5000, FEATURES))
    _register(registry, 1, reference)
    _register(registry, 2, reference)
    _register(registry, 1, None, bias_shift=1.0)  # the shadow: disagrees on some labels
    registry.set_deployment(
        "credit",
        [Arm("1", Role.CHAMPION, 0.8), Arm("2", Role.CANARY, 0.2)],
        [Shadow("3", 1.0)],
        actor="test",
        reason="canary 20%",
    )
    gw = make_gateway(
        admin_tokens={ADMIN_TOKEN: "ops", VIEWER_TOKEN: "watcher"},
        admin_roles={"watcher": "viewer"},
        monitor_window=600,
        monitor_min_rows=150,
        monitor_interval_s=0.25,
        governor_interval_s=0.05,
    )
    stub = governor_pb2_grpc.GovernorServiceStub(gw.channel())
    policy = gpb.SetPolicyRequest(model="credit", toml=HOLDING_POLICY)
    stub.SetPolicy(policy, metadata=admin_metadata())
    shifted = rng.standard_normal((600, FEATURES))
    shifted[:, 0] += 4.0  # the champion's first feature drifts
    _send(gw, shifted, version="1")
    _send(gw, rng.standard_normal((200, FEATURES)))
    assert gw.gateway.taps.flush(30)
    assert gw.gateway.shadow.drain(30)
    return gw


def _shot(page: Any, name: str) -> None:
    """The whole page, and what fits the window (what a person sees first)."""
    CONSOLE_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(CONSOLE_ARTIFACTS / f"{name}.png"), full_page=True)
    page.screenshot(path=str(CONSOLE_ARTIFACTS / f"{name}-top.png"))


def test_a_viewer_sees_the_story(browser, story):
    base = story.http_url
    page = browser.new_page()
    page.goto(f"{base}/ui/models/credit")
    assert page.url.endswith("/ui/login")  # no cookie yet: the login form
    page.fill("#token", VIEWER_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/models")
    assert "watcher (viewer)" in page.inner_text("header")
    assert page.inner_text("table").count("credit") == 1
    _shot(page, "models")

    page.click("text=credit")
    page.wait_for_url(f"{base}/ui/models/credit")
    shares = page.locator(".share").all_inner_texts()
    assert shares == ["80.0%", "20.0%"]
    body = page.inner_text("main")
    assert "canary" in body and "champion" in body
    assert page.locator("svg[aria-label='traffic split'] rect").count() == 2
    assert "credit scorer" in body and "canary 20%" in body
    _shot(page, "model")

    def governor_holds() -> bool:
        page.goto(f"{base}/ui/models/credit/governor")
        return "hold" in page.inner_text("main")

    wait_for(governor_holds, timeout=60, every=0.5)
    assert page.inner_text("#step").startswith("step 1 of 2")
    gates = page.inner_text("table >> nth=1")
    assert "error_rate" in gates
    assert re.search(r"\b(pass|pending|fail)\b", gates)
    _shot(page, "governor")

    page.goto(f"{base}/ui/models/credit/drift")
    champion = page.locator("h2:has-text('Version 1') ~ h3 .verdict").first
    assert champion.inner_text() == "DRIFT"
    first_row = page.locator("tr.drift td").first.inner_text()
    assert first_row == "x[0]" or first_row.endswith("0")  # the shifted feature leads the table
    assert page.locator(".card svg").count() > 0  # reference vs current histograms
    _shot(page, "drift")

    page.goto(f"{base}/ui/models/credit/shadows")
    agreement = page.locator(".agreement").first.inner_text()
    assert re.fullmatch(r"\d+\.\d%", agreement)
    assert float(agreement[:-1]) < 100.0
    _shot(page, "shadows")

    page.goto(f"{base}/ui/audit")
    assert page.inner_text("#verify") == "chain verified: intact"
    assert "deployment" in page.inner_text("table")
    _shot(page, "audit")
    page.close()


def test_console_refuses_without_a_valid_token(registry, make_gateway):
    registry.register_version("m", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway()
    base = gw.http_url
    with httpx.Client(base_url=base, timeout=30) as client:
        first = client.get("/ui/models")
        assert first.status_code == 303 and first.headers["location"] == "/ui/login"
        wrong = client.post("/ui/login", data={"token": "nope"})
        assert wrong.status_code == 401 and "invalid token" in wrong.text
        assert "nope" not in wrong.text
        bearer = client.get("/ui/models", headers={"Authorization": "Bearer nope"})
        assert bearer.status_code == 401
        login = client.post("/ui/login", data={"token": ADMIN_TOKEN})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
        assert ">m<" in client.get("/ui/models").text
        unknown = client.get("/ui/models/nope")
        assert unknown.status_code == 404 and "nope" in unknown.text
        client.get("/ui/logout")
        assert client.get("/ui/models").status_code == 303


def test_console_sessions_are_not_tokens_and_end_at_logout(registry, make_gateway):
    """The cookie holds a random session id (never the token); sign-out revokes it on the
    server, so a copy of the old cookie no longer works; every page has the headers."""
    registry.register_version("m", modelzoo.linear(4, 2, seed=3), actor="test")
    gw = make_gateway()
    with httpx.Client(base_url=gw.http_url, timeout=30) as client:
        login = client.post("/ui/login", data={"token": ADMIN_TOKEN})
        assert login.status_code == 303
        session = client.cookies["onnxgate_console"]
        assert ADMIN_TOKEN not in session and len(session) >= 40
        page = client.get("/ui/models")
        assert page.status_code == 200
        for header, value in (
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "same-origin"),
            ("cache-control", "no-store"),
        ):
            assert page.headers[header] == value
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert client.get("/ui/login").headers["x-frame-options"] == "DENY"
        assert registry.sessions.live("test-operator") == 1
        client.get("/ui/logout")
        assert registry.sessions.live("test-operator") == 0
    # The old cookie, replayed by someone who copied it, is refused.
    with httpx.Client(base_url=gw.http_url, timeout=30) as thief:
        thief.cookies.set("onnxgate_console", session, path="/ui")
        assert thief.get("/ui/models").status_code == 303
        thief.cookies.set("onnxgate_console", ADMIN_TOKEN, path="/ui")  # the old cookie form
        assert thief.get("/ui/models").status_code == 303


def test_console_login_is_throttled_and_same_site_only(registry, make_gateway):
    gw = make_gateway(console_login_attempts=3)
    with httpx.Client(base_url=gw.http_url, timeout=30) as client:
        cross = client.post(
            "/ui/login", data={"token": ADMIN_TOKEN}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403 and "onnxgate_console" not in client.cookies
        same = client.post(
            "/ui/login", data={"token": ADMIN_TOKEN}, headers={"Origin": gw.http_url}
        )
        assert same.status_code == 303
        for _ in range(3):
            assert client.post("/ui/login", data={"token": "guess"}).status_code == 401
        refused = client.post("/ui/login", data={"token": "guess"})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        # Even the right token waits: a guesser cannot tell a hit from a refusal.
        assert client.post("/ui/login", data={"token": ADMIN_TOKEN}).status_code == 429


def test_a_ten_percent_canarys_label_is_whole_and_inside_the_chart(browser):
    """The 10 % canary's label was cut at the bar's end ("v2 canar")."""
    from gateway.console.charts import split_svg

    for weights in ((90, 10), (97, 3), (50, 50)):
        arms = [
            {"version": "1", "role": "champion", "weight": weights[0]},
            {"version": "2", "role": "canary", "weight": weights[1]},
        ]
        page = browser.new_page()
        page.set_content(f"<html><body style='margin:0'>{split_svg(arms)}</body></html>")
        labels = page.eval_on_selector_all(
            "svg text",
            "els => els.map(e => { const b = e.getBBox();"
            " return [e.textContent, b.x, b.x + b.width, b.y + b.height]; })",
        )
        page.close()
        assert [t for t, *_ in labels] == [
            f"v1 champion {weights[0]:.1f}%",
            f"v2 canary {weights[1]:.1f}%",
        ]
        for text, left, right, bottom in labels:
            assert 0 <= left and right <= 640 and bottom <= 46, (text, left, right, bottom)
