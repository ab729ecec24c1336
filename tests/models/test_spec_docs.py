"""The ModelSpec examples of docs/models.md are valid specs, and the field table is complete."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

from medattr.models import ModelSpec

DOC = (Path(__file__).resolve().parents[2] / "docs" / "models.md").read_text()
SECTION = DOC.split("## The ModelSpec, field by field", 1)[1]


def test_every_example_is_a_valid_spec() -> None:
    blocks = re.findall(r"```json\n(.*?)```", SECTION, re.S)
    assert len(blocks) == 4
    specs = [ModelSpec.from_dict(json.loads(b)) for b in blocks]
    assert specs[2].inferer is not None and specs[2].inferer["roi_size"] == [96, 96, 96]
    assert specs[3].in_channels == 2 and specs[3].output == "logits"


def test_every_field_is_documented() -> None:
    for f in fields(ModelSpec):
        assert f"`{f.name}`" in SECTION, f.name
