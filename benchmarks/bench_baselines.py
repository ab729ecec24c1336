"""Which baseline? Counterfactual (VAE) versus classic baselines for path attribution.

Methods {IG, SmoothGrad over IG, Split IG, Expected Gradients with healthy references} x
baselines {zero, blur, uniform noise, Gaussian noise, vae-recon, vae-guided,
vae-guided-residual, oracle: the true healthy twin} on held-out generated studies with exact
lesion masks; localisation, faithfulness and robustness metrics with 95 % bootstrap CIs; a
markdown report with figures. The logic lives in :mod:`medattr.benchmarking`; this script and
``medattr benchmark`` are two doors to it with the same options.

Regenerate the documentation page (about 15 minutes on 2 CPU cores with the shipped models)::

    python benchmarks/bench_baselines.py --full --out bench_out/baselines --docs docs/results.md

Smoke test with any classifier / VAE pair of the same grid::

    python benchmarks/bench_baselines.py --quick --out /tmp/bb --classifier clf.ts --vae vae.ts

An interrupted run resumes where it stopped when started again with the same ``--out`` and
settings; ``--report-only`` rebuilds the report from the rows already measured.
"""

from __future__ import annotations

import argparse
import logging
import sys

from medattr.benchmarking import add_arguments, config_from_args, run_benchmark, write_report
from medattr.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
    )
    try:
        if args.report_only:
            write_report(args.out, docs=args.docs)
        else:
            run_benchmark(config_from_args(args), args.out, docs=args.docs)
    except InputError as exc:
        logging.getLogger("bench_baselines").error("error: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
