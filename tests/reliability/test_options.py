"""Bad options: refused with exit 2 and a message naming the option, before the model is run,
a baseline made or a path point evaluated."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import Case

ISSUE = " — issue 12"

CASES = [
    # (id, arguments, fragments of the message, title, in issue 12)
    ("steps-huge", ["--steps", "1000000000"], ["--steps", "<= 1024"], "--steps 1000000000", 1),
    ("batch-zero", ["--batch", "0"], ["--batch", "positive integer or 'auto'"], "--batch 0", 1),
    (
        "sigma-nan",
        ["--blur-sigma-mm", "nan"],
        ["--blur-sigma-mm", "finite"],
        "--blur-sigma-mm nan",
        1,
    ),
    (
        "sigma-negative",
        ["--blur-sigma-mm", "-1"],
        ["--blur-sigma-mm", ">= 0"],
        "--blur-sigma-mm -1",
        1,
    ),
    (
        "budget-words",
        ["--memory-budget", "lots"],
        ["--memory-budget", "such as '8GB'"],
        "--memory-budget lots",
        1,
    ),
    ("budget-zero", ["--memory-budget", "0"], ["--memory-budget"], "--memory-budget 0", 0),
    ("steps-zero", ["--steps", "0"], ["--steps", ">= 1"], "--steps 0", 0),
    ("steps-fraction", ["--steps", "2.5"], ["--steps", "integer"], "--steps 2.5", 0),
    ("format-unknown", ["--format", "nifti,jpeg"], ["jpeg", "dicom-seg"], "--format jpeg", 0),
    ("device-unknown", ["--device", "gpu7"], ["--device", "gpu7"], "--device gpu7", 0),
    ("seed-words", ["--seed", "abc"], ["--seed", "integer"], "--seed abc", 0),
    ("ratio-above-one", ["--method", "split-ig", "--ratio", "1.5"], ["--ratio"], "--ratio 1.5", 0),
]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        pytest.param(
            argv,
            says,
            id=cid,
            marks=pytest.mark.reliability(
                "options",
                title + (ISSUE if in_issue else ""),
                "exit 2 naming the option and what it accepts; nothing run",
            ),
        )
        for cid, argv, says, title, in_issue in CASES
    ],
)
def test_bad_option_is_refused_before_any_work(
    argv: list[str],
    says: list[str],
    case: Case,
    tiny_model: Path,
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case.track(study, tiny_model)
    case.spy_on_work(monkeypatch)
    outcome = case.explain(study, tiny_model, tmp_path / "out", *argv)
    case.fails(outcome, 2, *says)
    assert "internal" not in outcome.stderr.lower() and "_batch" not in outcome.stderr
