"""The IG's example resources can be stored and read back unchanged (apart from the store-maintained meta)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ror.store import ResourceStore

EXAMPLES = ["Location-ror-location-exemple.json", "HealthcareService-1234564.json"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_ig_example_round_trip(store: ResourceStore, reference_dir: Path, name: str) -> None:
    original = json.loads((reference_dir.parent / "docs" / "ig-examples" / name).read_text(encoding="utf-8"))
    stored, created = store.update(original["resourceType"], original["id"], original)
    assert created and stored.version_id == 1
    back = store.read(original["resourceType"], original["id"]).resource()
    assert {k: v for k, v in back.items() if k != "meta"} == {k: v for k, v in original.items() if k != "meta"}
    assert back["meta"]["profile"] == original["meta"]["profile"]
    for tag in original["meta"].get("tag", []):
        assert tag in back["meta"]["tag"]
    # a second identical PUT writes no new version
    again, _ = store.update(original["resourceType"], original["id"], back)
    assert again.version_id == 1
