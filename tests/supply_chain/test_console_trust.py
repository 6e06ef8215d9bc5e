"""The console's model page says who signed each version (or "unsigned") and its scan."""

from __future__ import annotations

from gateway.console.pages import model_page


def test_model_page_shows_signer_and_scan_per_version() -> None:
    tags = {"signature.signer": "alice (key 0123456789abcdef)", "scan": "passed: 1 nodes"}
    signed = {"version": "1", "status": "champion", "lineage": {"tags": tags}}
    unsigned = {"version": "2", "status": "registered", "lineage": {"tags": {}}}
    html = model_page("m", {"arms": []}, [signed, unsigned], [], [], who="op")
    assert "signed by alice (key 0123456789abcdef)" in html
    assert "scan: passed: 1 nodes" in html
    assert "unsigned" in html
