"""gcf-eval: refine perturbed ground-truth poses on a BOP dataset; the metrics of docs/design.md §4.

    gcf-eval --dataset ../shared/data/lmo --method mask --noise medium --max-instances 40
    gcf-eval --dataset my_bop --dataset-unit m --models my_models.yaml --model-id 1=mug ...

Any BOP-layout folder: --dataset-unit gives its length unit (mm by BOP's convention), --models
the models (default: the folder's models/; a registry YAML or another BOP models folder), and
--model-id maps its object ids to the registry's (default obj_NNNNNN); see
gcf_ros/eval/models_input.py. --checkpoint takes a path or the name of a shipped weights file
(gcf_lmo_s64.pt), from any folder.

--device cuda (or cuda:N) runs gcf on the GPU path: the torch rasterizer, the solve and a
CUDA-graph network on that GPU; --renderer and --network-backend choose otherwise (e.g.
--renderer raycast: ray casting on the CPU, only the network on the GPU; --renderer torch on the
CPU). They are parsed as the node's parameters are (gcf_ros/gcf/placement.py); a CUDA device that
is missing is an error.

With --depth each frame also gets its depth image (the dataset's depth/ folder; LM-O here has
none: make a copy with simulated depth with gcf-simdepth), which the gcf method's depth term uses
and the baselines ignore; --depth-drop and --depth-lag degrade it (gcf_ros/eval/depth_input.py).

Prints a before/after table (overall, per object, per visibility bin) and writes a JSON document:
{"method", "label", "noise", "seed", "depth", "depth_drop", "depth_lag", "depth_used" (the
method read the depth), "n_instances", "initial": M, "refined": M, "per_object": {obj_id:
{"initial": M, "refined": M}}, "per_visibility": {...}, "time": {"per_object_ms_median",
"per_iteration_ms_median"}, "iterations": {"max", "mean", "histogram", "converged",
"stopped_early"}, "config": {the options, "method_config", gcf: "placement"}, "instances":
[...]}, where M holds add_s_01d, deg5_cm5, proj_5px (fractions), median_rot_deg, median_trans_cm,
median_proj_px, acc_pi6, acc_pi18, n and add_sym_01d (ADD over the symmetries;
gcf_ros/eval/metrics.py says how symmetries count), and "placement" where gcf rendered, solved
and ran its network, and with which backend (Placement.to_dict).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from tqdm import tqdm

from gcf_ros.core.bop import DEFAULT_UNIT, BopDataset
from gcf_ros.core.symmetry import UNITS_TO_M
from gcf_ros.eval.depth_input import NO_DEPTH_HEADER, DepthInput, DepthSettings
from gcf_ros.eval.harness import EvalConfig, evaluate, results_dict, select_instances
from gcf_ros.eval.methods import GcfMethod, NoRefinement, SoftRenderMethod
from gcf_ros.eval.models_input import check_models_cover, load_registry, parse_model_ids
from gcf_ros.eval.perturb import NOISE_LEVELS
from gcf_ros.gcf.placement import AUTO, BACKEND_OPTIONS, RENDERER_OPTIONS, Placement

METHODS = ("none", "mask", "rgb", "gcf")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gcf-eval",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", type=Path, required=True, help="BOP-layout folder")
    p.add_argument(
        "--dataset-unit", choices=sorted(UNITS_TO_M), default=DEFAULT_UNIT,
        help="the dataset's length unit: scene_gt translations, depth x depth_scale, "
        "models_info and meshes of its models/ (default: mm, BOP's convention)",
    )  # fmt: skip
    p.add_argument(
        "--models", type=Path, default=None,
        help="a model registry YAML, or a BOP models folder / models_info.json (default: the "
        "dataset's models/)",
    )  # fmt: skip
    p.add_argument(
        "--model-id", dest="model_ids", action="append", default=[], metavar="OBJ_ID=MODEL_ID",
        help="the registry id of a BOP object id (repeatable; default obj_NNNNNN)",
    )  # fmt: skip
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--noise", choices=sorted(NOISE_LEVELS), default="medium")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-instances", type=int, default=None)
    p.add_argument("--iterations", type=int, default=None, help="default: the method's own")
    p.add_argument("--solver", choices=("gradient", "gauss_newton"), default="gauss_newton")
    p.add_argument(
        "--checkpoint", default=None,
        help="gcf weights: a path, or a shipped file's name (gcf_lmo_s64.pt); default: shipped",
    )  # fmt: skip
    p.add_argument(
        "--coarse-checkpoint", default=None,
        help="gcf: a second network for the coarse-window iterations (--set coarse_window_size=.. "
        "--set coarse_iterations=..), e.g. gcf_lmo_s64.pt; default: the main network",
    )  # fmt: skip
    p.add_argument(
        "--terms", default=None,
        help="gcf: comma-separated solver terms (field, region, contour = oracle visible mask); "
        "default: the refiner's",
    )  # fmt: skip
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="gcf: a RefinerConfig field (repeatable), e.g. --set silhouette_scale=2",
    )  # fmt: skip
    p.add_argument(
        "--frames", default=None, metavar="A-B",
        help="only the A-th to B-th frame in dataset order (1-based, inclusive): LM-O 1-50 are "
        "the validation frames (settings may be chosen there), 51-100 the report frames",
    )  # fmt: skip
    p.add_argument(
        "--depth", action="store_true",
        help="give each frame its depth image (depth/ of the dataset; see gcf-simdepth)",
    )  # fmt: skip
    p.add_argument(
        "--depth-drop", type=float, default=0.0, metavar="F",
        help="with --depth: remove this fraction of the valid depth pixels at random (seeded)",
    )  # fmt: skip
    p.add_argument(
        "--depth-lag", type=int, default=0, metavar="N",
        help="with --depth: use the depth of the frame N positions earlier in the scene (im_id "
        "order; the first N frames get the scene's first depth image)",
    )  # fmt: skip
    p.add_argument(
        "--device", default="cpu",
        help="cpu, cuda or cuda:N: the baselines' rasterizer; gcf: where it renders, solves and "
        "runs the network (cuda: the GPU path, gcf_ros/gcf/placement.py)",
    )  # fmt: skip
    p.add_argument(
        "--renderer", choices=RENDERER_OPTIONS, default=AUTO,
        help="gcf: auto (raycast on cpu, torch on cuda), raycast (open3d, CPU; with --device cuda "
        "only the network runs there), torch (plain-torch rasterizer) or pytorch3d",
    )  # fmt: skip
    p.add_argument(
        "--network-backend", choices=BACKEND_OPTIONS, default=AUTO,
        help="gcf: how the network runs, auto = fused on cpu, cuda_graph on cuda "
        "(gcf_ros/gcf/inference.py; same poses within float rounding)",
    )  # fmt: skip
    p.add_argument("--min-visib", type=float, default=0.3)
    p.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    p.add_argument("--plot", type=Path, default=None, help="also draw accuracy curves (PNG)")
    return p


def make_method(args, registry):
    if args.method == "none":
        return NoRefinement()
    gcf_only = {"--coarse-checkpoint": args.coarse_checkpoint is not None,
                "--renderer": args.renderer != AUTO,
                "--network-backend": args.network_backend != AUTO}  # fmt: skip
    given = [name for name, set_ in gcf_only.items() if set_]
    if given and args.method != "gcf":
        raise ValueError(f"{', '.join(given)}: gcf settings, not for --method {args.method}")
    # device, renderer and network backend: the one parser of every entry point (a ValueError
    # here); the baselines take only the device
    placement = Placement.from_options(args.device, args.renderer, args.network_backend)
    if args.method in ("mask", "rgb"):
        from gcf_ros.baselines.soft_render import SoftRenderConfig

        overrides = {"iterations": args.iterations} if args.iterations else {}
        config = SoftRenderConfig.for_space(args.method, **overrides)
        return SoftRenderMethod(config, registry, args.device)
    terms = args.terms.split(",") if args.terms else None
    overrides = parse_overrides(args.overrides)
    return GcfMethod(
        registry, args.checkpoint, args.iterations, args.solver, placement, terms, overrides,
        args.coarse_checkpoint,
    )  # fmt: skip


def make_depth_input(args, dataset: BopDataset) -> DepthInput | None:
    """The depth input of ``--depth`` (None without it); ValueError for --depth-drop or
    --depth-lag without --depth."""
    if not args.depth:
        if args.depth_drop or args.depth_lag:
            raise ValueError("--depth-drop and --depth-lag need --depth")
        return None
    settings = DepthSettings(args.depth_drop, args.depth_lag, args.seed)
    return DepthInput(dataset, settings)


def parse_overrides(items: list[str]) -> dict:
    """``["key=value", ...]`` -> RefinerConfig overrides, values typed by the field's default
    (tuples as comma-separated lists; ``none`` for None where a field may be None)."""
    from gcf_ros.gcf.refiner import RefinerConfig

    fields = {f.name: f for f in dataclasses.fields(RefinerConfig)}
    defaults = RefinerConfig.resolve(None)
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY a RefinerConfig field")
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            sub = {}
            sub_fields = {f.name: f for f in dataclasses.fields(default)}
            for part in value.split(";"):
                k, _, v = part.partition(":")
                if k not in sub_fields:
                    raise ValueError(f"--set {item!r}: {k!r} is not a field of {key}")
                sub[k] = _field_value(sub_fields[k], getattr(default, k), v)
            out[key] = dataclasses.replace(default, **sub)
        else:
            out[key] = _field_value(fields[key], default, value)
    return out


def _field_value(f: dataclasses.Field, default, value: str):
    """``value`` typed as dataclass field ``f`` (whose current value is ``default``): ``none``
    for None where the annotation allows it; a None default takes the annotation's type."""
    if value.lower() == "none" and "None" in str(f.type):
        return None
    if default is None:  # "int | None" or "float | None": the annotation says which
        return (int if "int" in str(f.type) else float)(value)
    return _typed(default, value)


def _typed(default, value: str):
    if isinstance(default, tuple):
        return tuple(type(default[0])(v) if default else v for v in value.split(","))
    if isinstance(default, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def frame_range(selected: list, dataset: BopDataset, frames: str | None) -> list:
    """The instances of ``selected`` in the A-th to B-th frame of the dataset (1-based, in
    (scene, image) order, inclusive; ``frames`` = "A-B" or "A")."""
    if not frames:
        return selected
    a, _, b = frames.partition("-")
    lo, hi = int(a), int(b or a)
    if not 1 <= lo <= hi:
        raise ValueError(f"--frames {frames!r}: expected A-B with 1 <= A <= B")
    order = {(f.scene_id, f.im_id): i + 1 for i, f in enumerate(dataset.frames())}
    return [s for s in selected if lo <= order[(s[0].scene_id, s[0].im_id)] <= hi]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model_ids = parse_model_ids(args.model_ids)
        dataset = BopDataset(args.dataset, unit=args.dataset_unit, model_ids=model_ids)
        registry = load_registry(args.models, dataset)
        check_models_cover(dataset, registry, str(args.models or dataset.root / "models"))
        method = make_method(args, registry)
        depth = make_depth_input(args, dataset)
    except (FileNotFoundError, ValueError, NotImplementedError, TypeError) as err:
        print(f"gcf-eval: {err}", file=sys.stderr)
        return 2
    config = EvalConfig(args.dataset, args.noise, args.seed, None, args.min_visib)
    # The initial poses are drawn over every instance, then the frame range and the count apply:
    # an instance starts from the same pose whichever subset it is evaluated in.
    try:
        selected = frame_range(select_instances(dataset, registry, config), dataset, args.frames)
    except ValueError as err:
        print(f"gcf-eval: {err}", file=sys.stderr)
        return 2
    selected = selected[: args.max_instances] if args.max_instances else selected
    bar_args = {"total": len(selected), "desc": f"{method.label} @ {args.noise}", "unit": "inst"}
    with tqdm(**bar_args, mininterval=2.0) as bar:
        records = evaluate(selected, registry, method, progress=bar.update, depth=depth)
    header = {"method": args.method, "label": method.label, "noise": args.noise, "seed": args.seed,
              **(NO_DEPTH_HEADER if depth is None else depth.header()),
              "depth_used": depth is not None and getattr(method, "uses_depth", False)}  # fmt: skip
    max_iterations = getattr(method, "max_iterations", None)
    limit = max_iterations(header["depth_used"]) if max_iterations else None
    results = results_dict(records, header, limit)
    results["config"] = _config_dict(args, method)
    print(format_table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.out}")
    if args.plot:
        from gcf_ros.eval.report import plot_accuracy_curves

        plot_accuracy_curves([results], args.plot)
        print(f"wrote {args.plot}")
    return 0


def _config_dict(args, method) -> dict:
    cfg = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    if dataclasses.is_dataclass(getattr(method, "config", None)):
        cfg["method_config"] = dataclasses.asdict(method.config)
    if isinstance(getattr(method, "placement", None), Placement):  # gcf: where it ran
        cfg["placement"] = method.placement.to_dict()
    return cfg


def format_table(results: dict) -> str:
    """Before/after rows: overall, per object, per visibility bin."""
    cols = ("add_s_01d", "deg5_cm5", "proj_5px", "acc_pi18", "median_rot_deg", "median_trans_cm",
            "median_proj_px")  # fmt: skip
    head = f"{'':<22}{'n':>5} " + " ".join(f"{c:>15}" for c in cols)
    title = f"{results['label']} @ {results['noise']} (seed {results['seed']})"
    if results.get("depth"):
        title += f" with depth (drop {results['depth_drop']}, lag {results['depth_lag']} frames)"
    lines = [title, head]
    groups = [("all", results)]
    groups += [(f"obj {k}", v) for k, v in results["per_object"].items()]
    groups += [(f"visib {k}", v) for k, v in results["per_visibility"].items()]
    for name, group in groups:
        for stage in ("initial", "refined"):
            m = group[stage]
            vals = " ".join(_fmt(m[c], c.startswith("median")) for c in cols)
            lines.append(f"{name + ' ' + stage[:4]:<22}{m['n']:>5} {vals}")
    t = results["time"]
    lines.append(f"time: {t['per_object_ms_median']:.1f} ms per object, "
                 f"{t['per_iteration_ms_median']:.2f} ms per iteration (medians)")  # fmt: skip
    if "iterations" in results:
        lines.append(format_iterations(results["iterations"]))
    return "\n".join(lines)


def format_iterations(stats: dict) -> str:
    """One line: mean iterations, the early-stop and CONVERGED fractions, the histogram."""
    limit = f" of {stats['max']}" if stats["max"] is not None else ""
    line = f"iterations: mean {stats['mean']:.2f}{limit}"
    if stats["stopped_early"] is not None:
        line += f"; stopped early (CONVERGED before the limit) {100 * stats['stopped_early']:.1f} %"
    if stats["converged"] is not None:
        line += f"; CONVERGED {100 * stats['converged']:.1f} %"
    hist = " ".join(f"{k}:{v}" for k, v in stats["histogram"].items())
    return f"{line}; histogram (iterations:instances) {hist}"


def _fmt(v, is_median: bool) -> str:
    if v is None:
        return f"{'-':>15}"
    return f"{v:>15.2f}" if is_median else f"{100 * v:>14.1f}%"


if __name__ == "__main__":
    sys.exit(main())
