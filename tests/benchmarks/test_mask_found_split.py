"""benchmarks/mask_found_split.py: a run's rows split by whether the mask found the lesion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rows() -> list[dict]:
    rows = []
    for study, found in (("a", True), ("b", True), ("c", False)):
        rows.append(
            {
                "kind": "baseline",
                "study": study,
                "label": 1,
                "baseline": "inpaint",
                "mask_detected": found,
                "mask_dice": 0.8 if found else 0.0,
                "healthy": found and study == "a",
                "p_disease_input": 0.9 if found else 0.15,
                "p_disease_baseline": 0.3 if found else 0.9,
                "twin_error_lesion": 0.1 if found else 0.2,
            }
        )
        rows.append(
            {
                "kind": "baseline",
                "study": study,
                "label": 1,
                "baseline": "oracle",
                "distance_lesion": 0.3 if found else 0.2,
                "p_disease_baseline": 0.5 if study == "b" else 0.1,
            }
        )
        rows.append(
            {
                "kind": "attribution",
                "study": study,
                "label": 1,
                "baseline": "inpaint",
                "method": "ig",
                "metrics": {"mass": 0.9 if found else None, "pointing": 1.0 if found else 0.0},
            }
        )
    return rows


def test_the_split_of_a_run(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    out = tmp_path / "split.json"
    script = ROOT / "benchmarks" / "mask_found_split.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(rows), "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    found, missed = got["found"], got["missed"]
    assert found["studies"] == 2 and missed["studies"] == 1
    assert found["relevance_mass"] == 0.9 and found["called_healthy"] == 0.5
    assert found["p_disease_baseline"] == 0.3 and found["lesion_contrast"] == 0.3
    assert missed["pointing_game"] == 0.0 and missed["twin_error_lesion"] == 0.2
    # the classifier calls a and b diseased at p > 0.2, but b's twin too: only a could be healed
    assert found["input_called_diseased"] == 2 and found["input_diseased_twin_healthy"] == 1
    assert missed["input_called_diseased"] == 0 and missed["input_diseased_twin_healthy"] == 0
    assert got["threshold"] == 0.2
