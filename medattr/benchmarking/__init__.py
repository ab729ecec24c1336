"""The baseline benchmark: which baseline makes path attributions faithful and well localised?

Runs Integrated Gradients, SmoothGrad over IG, Split IG and Expected Gradients with classic
baselines (zero, blur, uniform and Gaussian noise), VAE counterfactuals (reconstruction,
classifier-guided, guided with residual correction) and the oracle (each study's true healthy
twin) on held-out generated studies with exact lesion masks; measures localisation,
faithfulness and robustness; aggregates means with 95 % bootstrap CIs; writes a markdown report
with figures. Measurements are appended to ``rows.jsonl`` as they are made, so an interrupted
run resumes where it stopped.

Examples
--------
>>> from medattr.benchmarking import BenchmarkConfig
>>> cfg = BenchmarkConfig.from_preset("quick", classifier="clf.ts", vae="vae.ts")
>>> cfg.n_studies, cfg.methods
(2, ('ig', 'smoothgrad', 'split-ig', 'eg'))

``run_benchmark(cfg, "bench_out")`` runs it (``medattr benchmark --out bench_out --quick`` on the
command line).
"""

from medattr.benchmarking.aggregate import ci, compare, summarise
from medattr.benchmarking.config import (
    BASELINES,
    METHODS,
    PRESETS,
    BenchmarkConfig,
    add_arguments,
    config_from_args,
)
from medattr.benchmarking.report import write_report
from medattr.benchmarking.rows import RowStore, read_rows
from medattr.benchmarking.runner import run_benchmark

__all__ = [
    "BASELINES",
    "METHODS",
    "PRESETS",
    "BenchmarkConfig",
    "RowStore",
    "add_arguments",
    "ci",
    "compare",
    "config_from_args",
    "read_rows",
    "run_benchmark",
    "summarise",
    "write_report",
]
