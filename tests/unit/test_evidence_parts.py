"""Every evidence part owns its fleet merge and codec, so a gate's evidence cannot be
published and then lost (a part the fleet forgot to merge left its gate pending for ever)."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from gateway.fleet.payload import decode, encode, merge
from gateway.governor.evidence import PARTS, Evidence, EvidencePart


def test_the_parts_are_exactly_evidences_fields() -> None:
    assert [p.key for p in PARTS] == [f.name for f in fields(Evidence)]
    assert all(issubclass(p, EvidencePart) for p in PARTS)


@pytest.mark.parametrize("kind", PARTS, ids=lambda p: p.key)
def test_each_part_round_trips_through_json_and_merges(kind: type[EvidencePart]) -> None:
    part = kind()  # a part missing plus/minus/encode/decode is abstract: this raises
    assert kind.decode(json.loads(json.dumps(part.encode()))) == part
    assert type(part.plus(part)) is kind
    assert type(part.minus(part)) is kind


def test_the_fleet_keeps_every_part_of_live_processes() -> None:
    ev = Evidence.of({p.key: p() for p in PARTS})
    payload = json.loads(json.dumps(encode(ev)))
    assert set(payload) == {p.key for p in PARTS}
    total = merge([(decode(payload), True), (decode(payload), True)])
    missing = [p.key for p in PARTS if total.part(p.key) is None]
    assert not missing, f"parts lost by the fleet merge: {missing}"
    stale = merge([(decode(payload), False)])
    assert [p.key for p in PARTS if stale.part(p.key) is None] == [
        p.key for p in PARTS if p.live_only
    ]


def test_a_payload_from_a_newer_process_with_an_unknown_part_still_decodes() -> None:
    assert decode({"traffic": [1, 0, [None], [1]], "future": [1, 2]}).traffic is not None
