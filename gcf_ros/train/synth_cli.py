"""gcf-synth: write a synthetic training set for the correspondence network.

    gcf-synth --config config/train.yaml --out data/synthetic/train --num 20000 \
        [--shard-size 500] [--seed 0] [--workers N]

Reads the ``synth:`` section and the model registry (top-level ``models:``) of the config, and
writes ``shard_NNNNN.npz`` files plus ``manifest.json`` into ``--out``. Existing shards of the same
set are kept, so an interrupted run resumes where it stopped. Only the CAD models and procedural
content are used (never the LM-O evaluation frames). Every sample is checked for finite values:
the first one that is not stops the run (exit status 2) with its index, model and arrays; the set
stays marked incomplete in its manifest.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gcf_ros.train.synth import load_synth_yaml, write_shards


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gcf-synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=Path("config/train.yaml"), help="training YAML")
    p.add_argument("--out", type=Path, required=True, help="output folder for the shards")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--shard-size", type=int, default=500, help="samples per shard (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the set (default 0)")
    cores = os.cpu_count() or 1
    p.add_argument("--workers", type=int, default=cores, help=f"processes (default {cores})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.num < 1 or args.shard_size < 1 or args.workers < 1:
        print("gcf-synth: --num, --shard-size and --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        config, registry = load_synth_yaml(args.config)
    except (OSError, ValueError, TypeError) as err:
        print(f"gcf-synth: cannot read {args.config}: {err}", file=sys.stderr)
        return 2
    num_shards = -(-args.num // args.shard_size)
    print(f"gcf-synth: {args.num} samples ({num_shards} shards of <= {args.shard_size}) "
          f"-> {args.out}, seed {args.seed}, {args.workers} worker(s)")  # fmt: skip
    print(f"gcf-synth: models {registry}; {config}")
    try:
        result = write_shards(
            config, registry, args.out, args.num, args.shard_size, args.seed, args.workers,
            progress=not args.quiet,
        )  # fmt: skip
    except (ValueError, RuntimeError) as err:  # bad ranges, a non-finite sample, no valid draw
        print(f"gcf-synth: stopped: {err}", file=sys.stderr)
        return 2
    rate = result.generated / result.seconds if result.seconds > 0 else float("nan")
    per_worker = rate / max(1, min(args.workers, num_shards))
    print(
        f"gcf-synth: generated {result.generated}, kept {result.skipped} existing samples in "
        f"{result.seconds:.1f} s: {rate:.1f} samples/s ({per_worker:.1f} per worker)"
    )
    print(f"gcf-synth: manifest {result.manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
