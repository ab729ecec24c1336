"""MedattrOperator: imported lazily, a clear error without the SDK, an SDK operator with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]

# Blocking the modules makes importing them fail, as on a machine without the SDK (where the
# SDK is installed, MONAI itself imports monai.deploy on `import monai`, so only a fresh
# process can show this).
WITHOUT_SDK = """
import json, sys
sys.modules["monai.deploy"] = None
sys.modules["holoscan"] = None
import medattr, medattr.pipeline
import medattr.deploy as d
ex = d.SeriesExplainer(MODEL, "out", n_steps=2, device="cpu")
try:
    d.MedattrOperator(None, model=MODEL, output_folder="out")
    error = None
except d.MissingSDKError as exc:
    error = [isinstance(exc, ImportError), str(exc)]
print(json.dumps([d.sdk_available(), ex.config.n_steps, error]))
"""


def test_without_the_sdk_medattr_works_and_the_operator_says_what_to_install(
    tiny_model: Path,
) -> None:
    res = subprocess.run(
        [sys.executable, "-c", f"MODEL = {str(tiny_model)!r}\n{WITHOUT_SDK}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    available, n_steps, error = json.loads(res.stdout.strip().splitlines()[-1])
    assert available is False and n_steps == 2
    assert error is not None, "the operator was created without the SDK"
    is_import_error, message = error
    assert is_import_error is True
    assert "pip install 'medattr[deploy]'" in message and "MONAI Deploy App SDK" in message


def test_with_the_sdk_it_is_an_sdk_operator_on_the_selector_port(kit: SimpleNamespace) -> None:
    kit.require_sdk()
    import inspect

    from monai.deploy.core import Operator
    from monai.deploy.operators.dicom_series_selector_operator import (
        DICOMSeriesSelectorOperator,
    )

    from medattr.deploy import MedattrOperator

    assert issubclass(MedattrOperator, Operator)
    selector_source = inspect.getsource(DICOMSeriesSelectorOperator.__init__)
    assert f'"{MedattrOperator.INPUT_NAME}"' in selector_source
    assert {"setup", "compute"} <= set(vars(MedattrOperator))
