"""Write the weights-only file of a training checkpoint (best.pt / last.pt of a gcf-train run).

    python scripts/export_checkpoint.py runs/corr/best.pt runs/stage3a.pt

gcf-train exports its best checkpoint when a run ends; this exports one while a run is still going
(or after it was stopped), e.g. to start a next stage from it. ``meta`` records the source.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gcf_ros.gcf.network import GcfNet, NetConfig, save_gcf_weights
from gcf_ros.gcf.weights_meta import WeightsMeta, read_weights_meta
from gcf_ros.train.shards import ShardDataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument(
        "--window-size",
        type=int,
        default=None,
        help="S the network was trained at (default: read from the run's training shards)",
    )
    args = p.parse_args()
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    net = GcfNet(NetConfig.from_dict(state["config"]["net"]))
    net.load_state_dict(state["model"])
    training = {
        "source": str(args.checkpoint),
        "iteration": int(state["iteration"]),
        "best": {k: float(v) for k, v in state["best"].items()},
        "train_config": state["config"],
    }
    size = args.window_size or _trained_window_size(state["config"]["train_dir"])
    save_gcf_weights(args.out, net, WeightsMeta(window_size=size, training=training).to_dict())
    read_weights_meta(args.out)
    print(f"{args.checkpoint} (iteration {training['iteration']}) -> {args.out}")


def _trained_window_size(train_dir: str) -> int:
    """S of the training shards; ``train_dir`` relative to the repository."""
    root = Path(train_dir)
    if not root.is_absolute():
        root = Path(__file__).resolve().parents[1] / root
    try:
        return ShardDataset(root, max_samples=1).size
    except FileNotFoundError as err:
        raise SystemExit(f"{err}: pass --window-size") from err


if __name__ == "__main__":
    main()
