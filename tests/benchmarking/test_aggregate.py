"""Aggregation: means and bootstrap intervals per cell, paired comparisons, the verdict."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from medattr.benchmarking.aggregate import ci, collect, compare, summarise, verdicts
from medattr.benchmarking.evaluate import METRICS, Metric
from medattr.benchmarking.verdict import overall, verdict_lines

MASS = Metric("mass", "relevance mass", True, "localisation")
DELETION = Metric("deletion_own", "deletion", False, "faithfulness")


def _row(study: str, method: str, baseline: str, **metrics: float | None) -> dict[str, Any]:
    return {
        "kind": "attribution",
        "study": study,
        "label": 1,
        "method": method,
        "baseline": baseline,
        "seconds": 1.0,
        "metrics": metrics,
    }


def test_ci_is_the_mean_of_the_finite_values_with_a_bracketing_interval() -> None:
    values = [0.1, 0.4, 0.35, 0.8, math.nan, None]
    c = ci(values, n_boot=4000, seed=3)  # type: ignore[arg-type]
    assert c["n"] == 4
    assert c["mean"] == pytest.approx(np.mean([0.1, 0.4, 0.35, 0.8]))
    assert c["lo"] < c["mean"] < c["hi"]
    assert 0.1 <= c["lo"] and c["hi"] <= 0.8  # bootstrap means stay within the data


def test_ci_of_nothing_and_of_one_value() -> None:
    assert ci([])["n"] == 0 and math.isnan(ci([])["mean"])
    one = ci([2.5])
    assert one["mean"] == 2.5 and math.isnan(one["lo"]) and one["n"] == 1


def test_ci_is_reproducible_with_its_seed() -> None:
    v = list(np.random.default_rng(0).normal(size=12))
    assert ci(v, seed=1) == ci(v, seed=1)
    assert ci(v, seed=1)["lo"] != ci(v, seed=2)["lo"]


def test_compare_orients_the_gain_by_the_metric_direction() -> None:
    a = {"s1": 0.5, "s2": 0.6, "s3": 0.7, "s4": 0.55}
    b = {"s1": 0.2, "s2": 0.3, "s3": 0.3, "s4": 0.25}
    up = compare(a, b, MASS, n_boot=1000)
    assert up["gain"] == pytest.approx(0.325) and up["verdict"] == "better" and up["wins"] == 4
    down = compare(a, b, DELETION, n_boot=1000)  # lower is better: a is worse
    assert down["gain"] == pytest.approx(-0.325) and down["verdict"] == "worse"


def test_compare_pairs_only_common_finite_studies() -> None:
    a = {"s1": 1.0, "s2": math.nan, "s3": 3.0, "s9": 5.0}
    b = {"s1": 0.0, "s2": 1.0, "s3": 1.0}
    c = compare(a, b, MASS, n_boot=500)
    assert c["n"] == 2 and c["gain"] == pytest.approx(1.5)


def test_compare_with_mixed_signs_is_not_a_win() -> None:
    a = {f"s{i}": v for i, v in enumerate([0.1, -0.1, 0.2, -0.2, 0.05, -0.05])}
    b = dict.fromkeys(a, 0.0)
    assert compare(a, b, MASS, n_boot=2000)["verdict"] == "no clear difference"
    assert compare({"s1": 1.0}, {"s1": 0.0}, MASS)["verdict"] == "too few studies"


def _synthetic_rows() -> list[dict[str, Any]]:
    """Three studies; vae-guided beats blur (the better classic) on mass, loses on deletion."""
    rows = []
    for i, s in enumerate(("a", "b", "c")):
        rows += [
            _row(s, "ig", "zero", mass=0.10 + 0.01 * i, deletion_own=0.50),
            _row(s, "ig", "blur", mass=0.20 + 0.01 * i, deletion_own=0.40 + 0.01 * i),
            _row(s, "ig", "vae-recon", mass=0.25 + 0.01 * i, deletion_own=0.60),
            _row(s, "ig", "vae-guided", mass=0.40 + 0.02 * i, deletion_own=0.70 + 0.01 * i),
            _row(s, "ig", "oracle", mass=1.0, deletion_own=0.10),
        ]
    rows.append(_row("elsewhere", "ig", "zero", mass=99.0))  # out of scope below
    rows.append(
        {
            "kind": "attribution",
            "study": "h",
            "label": 0,
            "method": "ig",
            "baseline": "zero",
            "metrics": {"score_gap": 0.5, "abs_attribution": 2.0},
        }
    )
    return rows


def test_collect_restricts_to_the_studies_in_scope() -> None:
    table = collect(_synthetic_rows(), {"a", "b", "c"})
    assert table[("ig", "zero", "mass")] == pytest.approx({"a": 0.10, "b": 0.11, "c": 0.12})
    assert "elsewhere" not in table[("ig", "zero", "mass")]


def test_verdicts_pick_the_best_of_each_family_and_measure_the_gap() -> None:
    rows = _synthetic_rows()
    table = collect(rows, {"a", "b", "c"})
    cells = {k: ci(list(v.values()), n_boot=500) for k, v in table.items()}
    out = {v["metric"]: v for v in verdicts(table, cells, "ig", n_boot=500)}
    mass = out["mass"]
    assert (mass["classic"], mass["vae"]) == ("blur", "vae-guided")
    assert mass["gain"] == pytest.approx(np.mean([0.20, 0.21, 0.22]))
    assert mass["verdict"] == "better"
    # (VAE - classic) / (oracle - classic) of the means
    assert mass["gap_closed"] == pytest.approx((0.42 - 0.21) / (1.0 - 0.21))
    dele = out["deletion_own"]
    assert (dele["classic"], dele["vae"]) == ("blur", "vae-recon")  # lower is better
    assert dele["verdict"] == "worse"


def test_summarise_filters_scope_and_keeps_healthy_rows_apart() -> None:
    s = summarise(_synthetic_rows(), study_ids=["a", "b", "c"], healthy_ids=["h"], n_boot=300)
    assert s["studies"] == ["a", "b", "c"] and s["healthy_studies"] == ["h"]
    assert s["baselines_present"] == ["zero", "blur", "vae-recon", "vae-guided", "oracle"]
    zero = next(c for c in s["cells"] if c["baseline"] == "zero" and c["metric"] == "mass")
    assert zero["mean"] == pytest.approx(0.11) and zero["n"] == 3
    assert s["healthy"]["zero"]["score_gap"]["mean"] == 0.5
    narrow = summarise(_synthetic_rows(), study_ids=["a", "b", "c"], baselines=["zero", "oracle"])
    assert narrow["baselines_present"] == ["zero", "oracle"]
    assert narrow["verdicts"]["ig"] == []  # no VAE baseline in scope: nothing to compare


@pytest.mark.parametrize(
    ("verdicts_", "word"),
    [
        (["better", "better"], "beat"),
        (["better", "no clear difference"], "mostly beat"),
        (["better", "worse"], "mixed"),
        (["worse", "no clear difference"], "do not beat"),
        (["worse", "worse"], "lose to"),
        (["no clear difference"], "do not clearly beat"),
        (["too few studies"], "undecided"),
    ],
)
def test_overall_words(verdicts_: list[str], word: str) -> None:
    assert overall([{"verdict": v} for v in verdicts_]) == word


def test_verdict_text_states_the_numbers() -> None:
    s = summarise(_synthetic_rows(), study_ids=["a", "b", "c"], n_boot=500)
    lines = verdict_lines(s, {})
    text = "\n".join(lines)
    # mass (localisation) is won, deletion (faithfulness) is lost
    assert "**beat** the classic baselines" in lines[0] and "**lose to** them" in lines[0]
    assert "on 3 lesion studies" in lines[0]
    assert "`vae-guided` 0.420 vs best classic `blur` 0.210" in text
    assert "**better**" in text and "**worse**" in text
    assert "of the classic-to-oracle gap closed" in text


def test_metrics_have_unique_keys() -> None:
    keys = [m.key for m in METRICS]
    assert len(keys) == len(set(keys))


def _local_rows() -> list[dict[str, Any]]:
    """Six lesion studies: the local counterfactual finds the lesion in four (mass 0.9 there)
    and nothing in two (an all-zero attribution, its mass undefined); two healthy studies."""
    rows: list[dict[str, Any]] = []
    for i, s in enumerate("abcdef"):
        found = i < 4
        rows += [
            _row(s, "ig", "blur", mass=0.05, pointing=0.0, completeness=0.01, abs_attribution=5.0),
            _row(s, "ig", "vae-guided", mass=0.06, pointing=0.0, abs_attribution=5.0),
            _row(s, "ig", "oracle", mass=1.0, pointing=1.0, completeness=0.02, abs_attribution=3),
            _row(
                s,
                "ig",
                "inpaint",
                mass=0.9 if found else None,
                pointing=1.0 if found else 0.4,  # ties of an all-zero map: arbitrary
                completeness=0.01,
                abs_attribution=2.0 if found else 0.0,
            ),
            _row(s, "ig", "inpaint-mask-blur", mass=0.7 if found else None, abs_attribution=1.0),
        ]
        rows.append(
            {
                "kind": "baseline",
                "study": s,
                "label": 1,
                "baseline": "inpaint",
                "distance_outside": 0.0,
                "seconds": 0.2,
                "mask_dice": 0.8 if found else 0.0,
                "mask_detected": found,
            }
        )
    for h, empty in (("h1", True), ("h2", False)):
        rows.append(
            {
                "kind": "baseline",
                "study": h,
                "label": 0,
                "baseline": "inpaint",
                "anomaly_mask_empty": empty,
            }
        )
    return rows


def test_an_all_zero_attribution_scores_zero_on_localisation() -> None:
    table = collect(_local_rows())
    assert table[("ig", "inpaint", "mass")]["e"] == 0.0  # undefined in the row: no relevance
    assert table[("ig", "inpaint", "pointing")]["f"] == 0.0  # not the arbitrary tie-break
    assert table[("ig", "inpaint", "mass")]["a"] == 0.9
    assert math.isnan(table[("ig", "inpaint-mask-blur", "mass")]["e"])  # attribution not zero


def test_the_local_counterfactual_is_measured_against_its_bar() -> None:
    s = summarise(_local_rows(), n_boot=500)
    local = s["local"]
    mass = next(v for v in local["verdicts"] if v["metric"] == "mass")
    assert mass["vae"] == "inpaint" and mass["classic"] == "blur"
    assert mass["vae_mean"] == pytest.approx(0.6)  # 4 x 0.9 and 2 x 0, over six studies
    assert local["against"]["vae-guided"]["verdict"] == "better"
    assert local["against"]["inpaint-mask-blur"]["n"] == 4  # paired where both are defined
    text = "\n".join(verdict_lines(s, {}))
    assert "### The local counterfactual" in text
    assert "relevance mass 0.600" in text and "57.9 % of the gap closed" in text
    assert "pointing game 0.67 (bar: ≥ 0.9) → **misses**" in text
    assert "healthy studies with an empty mask (x′ = x): 50 % (bar: ≥ 90 %) → **misses**" in text
    assert "0.20 s per study" in text and "finds the lesion in 67 %" in text
    assert "`inpaint` wins (the rule for replacing the default)" in text


def test_the_guided_local_counterfactual_is_reported_apart_against_the_mask_only_one() -> None:
    """inpaint-guided finds all six lesions (the classifier grew two masks): it gets its own
    section, the same bars, and a paired comparison with ``inpaint`` on relevance mass."""
    rows = _local_rows()
    for i, s in enumerate("abcdef"):
        rows.append(
            _row(
                s,
                "ig",
                "inpaint-guided",
                mass=0.9,
                pointing=1.0,
                completeness=0.01,
                abs_attribution=2.0,
            )
        )
        rows.append(
            {
                "kind": "baseline",
                "study": s,
                "label": 1,
                "baseline": "inpaint-guided",
                "distance_outside": 0.0,
                "seconds": 0.6,
                "mask_dice": 0.8,
                "mask_detected": True,
                "guided": i >= 4,
            }
        )
    for h in ("h1", "h2"):
        rows.append(
            {
                "kind": "baseline",
                "study": h,
                "label": 0,
                "baseline": "inpaint-guided",
                "anomaly_mask_empty": True,
            }
        )
    s = summarise(rows, n_boot=500)
    guided = s["local_guided"]
    assert guided["baseline"] == "inpaint-guided" and set(guided["against"]) == {"inpaint"}
    assert guided["against"]["inpaint"]["n"] == 6  # an undefined mass counts 0 here too
    text = "\n".join(verdict_lines(s, {}))
    section = text.split("### The classifier-guided local counterfactual (reported apart)")[1]
    assert (
        "relevance mass 0.900" in section
        and "pointing game 1.00 (bar: ≥ 0.9) → **meets**" in section
    )
    assert "grew the mask in 33 % of lesion studies" in section
    assert "healthy studies with an empty mask (x′ = x): 100 %" in section
    # the mask-only section is unchanged by the guided rows
    assert "pointing game 0.67 (bar: ≥ 0.9) → **misses**" in text.split("### The classifier")[0]


def test_baselines_outside_the_built_in_order_are_listed_by_name() -> None:
    """The same rows give the same page: ties in the report order are broken by name, whatever
    the hash seed of the process."""
    rows = [_row("a", "ig", b, mass=0.5) for b in ("zz-mine", "blur", "aa-mine")]
    rows += [
        {"kind": "baseline", "study": "h", "label": 0, "baseline": b, "distance_region": 0.0}
        for b in ("zz-mine", "aa-mine")
    ]
    s = summarise(rows, n_boot=100)
    assert s["baselines_present"] == ["blur", "aa-mine", "zz-mine"]
    assert list(s["healthy"]) == ["zz-mine", "aa-mine"]  # first seen first, not set order
