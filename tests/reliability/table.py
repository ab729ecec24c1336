"""Write ``docs/reliability.md`` from the reliability suite's results (see ``conftest.py``)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

GROUPS = ("NIfTI", "DICOM", "model", "options", "output directory", "cohort", "process")

HEAD = """# Reliability: bad inputs and faults

Every case below is a test in `tests/reliability/`; this page is written by the suite itself
from what each case observed (do not edit it by hand):

```
MEDATTR_RELIABILITY_TABLE=docs/reliability.md python -m pytest tests/reliability -p no:cacheprovider
```

Each case checks five promises: the **exit status** says who can fix the problem (0 done;
2 bad input, options, model or environment — disk, permissions, memory; 3 some studies of a
cohort failed; 1 an internal error, reported with a hint to report it; 130 interrupted); the
**message** names the problem and the file or option; on failure **nothing is written** (the
output directory is not created, or left exactly as it was); the **inputs are byte-identical**
afterwards; and **no planted patient identifier** (the test series' name, ID and birth date,
also planted in NIfTI headers) appears in stdout, stderr, the log file, the manifest or the
cohort summaries — on success and on failure. Cases marked *issue 12* are the failures
reported there; each of them failed this suite on the code before the fix.

How medattr keeps these promises:

- **Validation first.** Options are checked when the configuration is built (ranges, NaN, types,
  `--steps` at most 1024); the output directory is probed (created and written, then removed)
  before the model is loaded; a NIfTI header's declared data size is compared with the file
  before any voxel is read; the volume must have non-empty axes, a finite invertible affine,
  scalar (not colour or complex) voxels and not be constant; the model must run on the prepared
  input, return finite values of the promised shape, and take a forward and backward pass on two
  path points, whose measured memory must fit the budget — all before the baseline is made.
- **Constant volumes are refused.** A volume whose voxels are all equal (a blank export), or
  that is constant after the model's intensity mapping (every voxel outside a CT window, e.g.
  an MR volume for a CT model), holds nothing to explain: every baseline derived from it equals
  it, the attribution is zero everywhere and the completeness ratio is 0/0. medattr refuses it
  with exit 2 rather than writing an empty map with a warning.
- **One mapping of errors** (`medattr.failures.classify`): input and options, model
  (including `torch.jit.Error` and non-finite outputs or gradients) and environment (disk full,
  permissions, memory) exit 2; anything else is an internal error, exit 1.
- **PHI-safe by construction** (`medattr.phi`): identifiers read from DICOM headers are
  remembered and redacted from every log record, error message, manifest and cohort summary;
  third-party exception text (pydicom, highdicom, nibabel) is never shown raw; malformed
  DA/TM/DT/PN attributes are repaired or left empty in the DICOM outputs and named by keyword
  in the manifest's warnings.
- **Quiet by default**: third-party loggers only at WARNING unless `-v`; the `wrote …` lines
  name the final paths.
"""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(results: Sequence[dict[str, Any]]) -> str:
    """The page for ``results`` (one dict per case: group, title, expect, observed, passed)."""
    order = {g: i for i, g in enumerate(GROUPS)}
    rows = sorted(results, key=lambda r: (order.get(r["group"], len(order)), r["module"]))
    passed = sum(bool(r["passed"]) for r in rows)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = [
        HEAD,
        f"## Cases ({passed} of {len(rows)} passed, {stamp}, Python "
        f"{platform.python_version()} on {platform.system()})",
        "",
        "| # | group | case | expected | observed | |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        mark = "pass" if r["passed"] else "**FAIL**"
        lines.append(
            f"| {i} | {_cell(r['group'])} | {_cell(r['title'])} | {_cell(r['expect'])} | "
            f"{_cell(r['observed'])} | {mark} |"
        )
    return "\n".join(lines) + "\n"


def write_table(path: Path, results: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results), encoding="utf-8")
