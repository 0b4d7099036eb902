"""`keypaint bench gpu` without typer and rich: for a GPU machine with src/ on PYTHONPATH.

    PYTHONPATH=src python benchmarks/gpu_speed.py --work sd15 --cache-dir /tmp/kp-cache --out $OUT/sd15

Prints the markdown tables; with --out also writes OUT.json and OUT.md (see docs/performance.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keypaint.bench.gpu import WORKS, GpuBenchConfig, run_gpu_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", action="append", choices=sorted(WORKS), help="repeatable [default: sd15]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU: check the code path")
    parser.add_argument("--no-approximate", action="store_true", help="skip the DeepCache row")
    parser.add_argument("--no-low-memory", action="store_true", help="skip the offload / tiling rows")
    parser.add_argument("--cache-dir", type=Path, required=True, help="compile artefacts (reuse it: warm)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    config = GpuBenchConfig(
        works=tuple(args.work or ["sd15"]),
        rounds=args.rounds,
        tiny=args.tiny,
        approximate=not args.no_approximate,
        low_memory=not args.no_low_memory,
        cache_dir=args.cache_dir,
    )
    run_gpu_bench(config).write(args.out)


if __name__ == "__main__":
    main()
