"""gcf-bench: speed of the GCF refiner and of the soft-rasterizer baselines, in one process.

    gcf-bench --quick --out out/bench/quick.json        # ~2 minutes on 2 CPU cores
    gcf-bench --out out/bench/full.json                 # the full run (< 15 minutes on 2 cores)
    gcf-bench --accuracy-plot docs/images/accuracy_vs_time.png --instances 20

Prints a table and writes a JSON document (keys in gcf_ros.bench.report): per iteration and per
object (median, p90) for gcf_gauss_newton, gcf_gradient, gcf_rgbd (with simulated registered
depth), mask and rgb, split into phases, with
each baseline's ratio to gcf_gauss_newton measured in the same run; scaling with objects per frame,
window size and mesh faces; the node end to end (30 Hz stream with 1, 4, 8 detections per frame,
and the same numbers of objects in tracking mode, images only after the first frame; --quick:
1 and 8; real rclpy nodes: input/output rate, latency percentiles, drops, iterations run); peak
RSS per case; the machine.
Compare ratios, not absolute times, on shared machines. With --accuracy-plot it instead draws
ADD(-S) < 0.1 d vs time per object (gcf_ros.bench.accuracy) and writes its points to --out.

--device, --renderer and --network-backend place the GCF cases as gcf-eval's and the node's
options do (gcf_ros/gcf/placement.py): cpu (default) ray casting and the fused network on the CPU,
cuda the GPU path (torch rasterizer, solve and CUDA-graph network on the GPU); the baselines run
on the device too. A CUDA device that is missing falls back to the CPU with a message. The JSON
records the placement ("placement"). The node part runs the node's packaged parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from gcf_ros.bench.suite import BenchConfig
from gcf_ros.gcf.inference import BACKENDS
from gcf_ros.gcf.placement import AUTO, BACKEND_OPTIONS, RENDERER_OPTIONS, Placement


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gcf-bench",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="about two minutes: fewer repeats/sizes")
    p.add_argument("--out", type=Path, default=None, help="write the JSON document here")
    p.add_argument(
        "--device", default="cpu",
        help="cpu, cuda or cuda:N: where GCF renders, solves and runs its network (cuda: the GPU "
        "path), and the baselines' rasterizer",
    )  # fmt: skip
    p.add_argument(
        "--renderer", choices=RENDERER_OPTIONS, default=AUTO,
        help="GCF's renderer: auto (raycast on cpu, torch on cuda), raycast (open3d, CPU), torch, "
        "pytorch3d",
    )  # fmt: skip
    p.add_argument(
        "--network-backend", choices=BACKEND_OPTIONS, default=AUTO,
        help="the GCF cases' network backend: auto (fused on cpu, cuda_graph on cuda) or one "
        "of them (--backends: the backend scaling's)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    g = p.add_argument_group("speed benchmark (overrides of the full or --quick plan)")
    g.add_argument("--repeats", type=int, help="timed runs per instance, GCF and scaling")
    g.add_argument("--baseline-repeats", type=int, help="timed runs per instance, baselines")
    g.add_argument("--bench-instances", type=int, help="instances of the frame (default: all)")
    g.add_argument("--baseline-iterations", type=int, help="Adam iterations (default: 40)")
    g.add_argument("--objects", type=int, nargs="+", help="objects per frame (1 4 16)")
    g.add_argument("--windows", type=int, nargs="+", help="window sizes, px (64 128 192)")
    g.add_argument("--faces", type=int, nargs="+", help="mesh faces (2000 25000 100000)")
    g.add_argument("--backends", nargs="+", choices=BACKENDS,
                   help="network inference backends (all; --quick: eager fused)")  # fmt: skip
    g.add_argument("--skip-node", action="store_true",
                   help="no ROS-node benchmark ('node': null)")  # fmt: skip
    g.add_argument("--node-seconds", type=float, help="length of each node stream (default 8)")
    a = p.add_argument_group("accuracy per time")
    a.add_argument("--accuracy-plot", type=Path, default=None, help="draw it into this PNG")
    a.add_argument("--instances", type=int, default=20, help="LM-O instances for GCF")
    a.add_argument("--dataset", type=Path, default=_default_lmo(), help="BOP folder (LM-O)")
    a.add_argument("--eval-dir", type=Path, default=Path("out/eval"), help="gcf-eval JSONs")
    a.add_argument("--baseline-instances", type=int, default=5,
                   help="instances for baselines run live (no matching stored run)")  # fmt: skip
    a.add_argument("--rerun-baselines", action="store_true", help="ignore stored baseline runs")
    return p


def _default_lmo() -> Path:
    from gcf_ros.resources import share_dir

    return Path(os.environ.get("GCF_LMO_ROOT", share_dir().parent / "shared" / "data" / "lmo"))


def bench_config(args: argparse.Namespace, placement: Placement) -> BenchConfig:
    """The plan: full or quick, with the command line's overrides."""
    names = {
        "repeats": "repeats", "baseline_repeats": "baseline_repeats",
        "bench_instances": "instances", "baseline_iterations": "baseline_iterations",
        "objects": "objects", "windows": "windows", "faces": "faces", "backends": "backends",
    }  # fmt: skip
    overrides = {
        field: tuple(v) if isinstance(v, list) else v
        for arg, field in names.items()
        if (v := getattr(args, arg)) is not None
    }
    overrides["placement"] = placement
    return BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)


def bench_placement(args: argparse.Namespace) -> Placement:
    """The placement of --device, --renderer and --network-backend (ValueError for options that
    cannot run together); a CUDA device that is missing falls back to the CPU with a message."""
    from gcf_ros.bench.timing import resolve_device

    options = (args.renderer, args.network_backend)
    Placement.from_options(args.device, *options, check_device=False)  # the options themselves
    device, message = resolve_device(args.device)
    if message:
        print(message, file=sys.stderr)
    return Placement.from_options(device, *options)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        placement = bench_placement(args)
        if args.accuracy_plot is not None:
            return _accuracy(args, placement)
        return _speed(args, bench_config(args, placement))
    except (FileNotFoundError, ValueError) as err:
        print(f"gcf-bench: {err}", file=sys.stderr)
        return 2


def _speed(args: argparse.Namespace, config: BenchConfig) -> int:
    from gcf_ros.bench.frame import load_bench_frame
    from gcf_ros.bench.report import format_tables, to_json
    from gcf_ros.bench.suite import run_speed
    from gcf_ros.bench.timing import machine_info
    from gcf_ros.core.models import ModelRegistry
    from gcf_ros.resources import default_models_yaml

    t0 = time.perf_counter()
    machine = machine_info(config.device)
    frame = load_bench_frame()
    registry = ModelRegistry.from_yaml(default_models_yaml())
    results = run_speed(frame, registry, config, progress=lambda s: print(f"# {s}", flush=True))
    settings = {
        "quick": args.quick, "frame": str(frame.source), "noise": "medium", "seed": 0,
        "device_requested": args.device, "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    doc = to_json(results, config, machine, settings)
    if not args.skip_node:
        from gcf_ros.ros.bench_node import NodeBenchConfig, bench_node

        node_config = NodeBenchConfig.quick() if args.quick else NodeBenchConfig()
        if args.node_seconds:
            node_config = dataclasses.replace(node_config, duration_s=args.node_seconds)
        node_config = dataclasses.replace(node_config, threads=max(args.threads, 1))
        doc["node"] = bench_node(node_config, progress=lambda s: print(f"# {s}", flush=True))
    doc["settings"]["wall_s"] = time.perf_counter() - t0
    doc["machine"]["load_avg_1m_end"] = os.getloadavg()[0]
    print(format_tables(doc))
    _write(args.out, doc)
    return 0


def _accuracy(args: argparse.Namespace, placement: Placement) -> int:
    from gcf_ros.bench.accuracy import plot_accuracy_vs_time, run_accuracy

    doc = run_accuracy(
        args.dataset, args.instances, args.eval_dir, args.baseline_instances,
        args.rerun_baselines, placement, progress=lambda s: print(f"# {s}", flush=True),
    )  # fmt: skip
    doc["torch_threads"] = torch.get_num_threads()
    doc["placement"] = placement.to_dict()
    for p in doc["points"]:
        print(f"{p['series']:<18} its {p['iterations']:>3}  n {p['n']:>3}  "
              f"ADD(-S)<0.1d {100 * p['add_s_01d']:5.1f}%  {p['time_ms']:9.1f} ms/object  "
              f"({p['source']})")  # fmt: skip
    print(f"initial poses: ADD(-S)<0.1d {100 * doc['initial_add_s_01d']:.1f}%")
    plot_accuracy_vs_time(doc, args.accuracy_plot)
    print(f"wrote {args.accuracy_plot}")
    _write(args.out, doc)
    return 0


def _write(path: Path | None, doc: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
