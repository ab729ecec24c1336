"""configs/metadata.json follows the model-zoo schema, checked offline with the shipped copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bundle._standin import BUNDLE

SCHEMA = BUNDLE / "docs" / "meta_schema_20240725.json"


def _verify(meta_file: Path) -> None:
    try:
        import jsonschema  # noqa: F401  (verify_metadata needs it)
    except ImportError:
        pytest.fail("jsonschema is needed to verify bundle metadata: pip install jsonschema")
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(meta_file), filepath=str(SCHEMA))


def test_metadata_verifies_against_the_shipped_schema_offline() -> None:
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    # the URL names the shipped file, so verify_metadata finds it and downloads nothing
    assert meta["schema"].rsplit("/", 1)[1] == SCHEMA.name
    _verify(BUNDLE / "configs" / "metadata.json")


@pytest.mark.parametrize("field", ["task", "required_packages_version", "network_data_format"])
def test_the_schema_rejects_metadata_missing_a_required_field(tmp_path: Path, field: str) -> None:
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    del meta[field]
    broken = tmp_path / "metadata.json"
    broken.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=field):
        _verify(broken)


def test_metadata_describes_the_models_the_configs_use() -> None:
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    classes = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert classes == {"0": "healthy", "1": "lesion"}
    train = json.loads((BUNDLE / "configs" / "train_classifier.json").read_text())["training"]
    vae = json.loads((BUNDLE / "configs" / "train_vae.json").read_text())["training"]
    assert image["spatial_shape"] == train["spatial_size"] == vae["spatial_size"]
    assert train["pixdim"] == vae["pixdim"] and train["intensity"] == vae["intensity"]
    assert image["value_range"] == [train["intensity"]["a_min"], train["intensity"]["a_max"]]
    assert meta["vae_data_format"]["inputs"]["image"]["spatial_shape"] == image["spatial_shape"]
