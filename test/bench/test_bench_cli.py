"""gcf-bench end to end, as small as it gets: the JSON has the documented keys and numbers.

No timing assertions: only that every time is a positive number."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gcf_ros.bench import accuracy, suite
from gcf_ros.bench.cli import bench_placement, build_parser, main
from gcf_ros.bench.report import JSON_KEYS
from gcf_ros.bench.suite import METHODS
from gcf_ros.core.render.torch_raster import TorchRasterizer
from gcf_ros.eval.metrics import add_or_adds
from gcf_ros.gcf.placement import Placement

TINY = ["--quick", "--threads", "1", "--repeats", "1", "--bench-instances", "1",
        "--baseline-iterations", "2", "--objects", "1", "--windows", "64",
        "--faces", "2000", "--backends", "fused", "onnxruntime", "--skip-node"]  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """gcf-bench --threads sets torch's process-wide thread count: give it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_tiny_run_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main([*TINY, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == set(JSON_KEYS)
    for key in ("per_iteration_ms", "per_object_ms", "iterations", "memory_mb", "phases_ms"):
        assert set(doc[key]) == set(METHODS), key
    assert all(_positive(doc[k][m]) for k in ("per_iteration_ms", "per_object_ms") for m in METHODS)
    assert all(_positive(doc["p90_ms"][k][m]) for k in doc["p90_ms"] for m in METHODS)
    assert set(doc["ratios"]) == {"mask_over_gcf", "rgb_over_gcf", "rgbd_over_gcf_per_object"}
    assert all(_positive(v) for v in doc["ratios"].values())
    assert set(doc["phases_ms"]["gcf_gauss_newton"]) == {
        "crop", "render", "occluders", "network", "field", "region", "depth", "solve", "update",
        "other",
    }  # fmt: skip
    assert doc["phases_ms"]["gcf_gauss_newton"]["depth"]["median"] == 0
    assert _positive(doc["phases_ms"]["gcf_gauss_newton"]["field"]["median"])
    assert _positive(doc["phases_ms"]["gcf_rgbd"]["depth"]["median"])
    assert set(doc["phases_ms"]["mask"]) == {"forward", "backward", "step", "other"}
    assert doc["node"] is None
    assert doc["device"] == "cpu"
    assert doc["placement"] == Placement().to_dict()  # ray casting and fused, on the CPU
    assert all(_positive(doc["memory_mb"][m]["peak_rss"]) for m in METHODS)
    assert doc["iterations"]["mask"] == 2
    for axis in ("objects", "window_px", "mesh_faces"):
        (point,) = doc["scaling"][axis]
        assert _positive(point["per_iteration_ms"]["median"])
        assert _positive(point["per_object_ms"]["median"])
    backends = doc["scaling"]["network_backend"]
    assert [p["backend"] for p in backends] == ["fused", "onnxruntime"]
    assert all(_positive(p["phases_ms"]["network"]) for p in backends)
    assert doc["scaling"]["mesh_faces"][0]["actual"] <= 2000
    assert {"cpu", "cores", "torch_threads", "torch"} <= set(doc["machine"])
    assert doc["machine"]["torch_threads"] == 1
    printed = capsys.readouterr().out
    assert "gcf_gauss_newton" in printed and "network onnxruntime" in printed


def test_the_gcf_cases_run_under_the_placement_of_the_options(tmp_path, monkeypatch, capsys):
    """gcf-bench --renderer torch --device cpu (~12 s): each of the 7 GCF cases (3 methods, 4
    scaling points) gets a torch rasterizer, which renders the refinements; the report records
    the placement."""
    renderers, renders = [], []
    time_gcf, render = suite.time_gcf, TorchRasterizer.render

    def spy_case(*args, renderer=None, **kw):
        renderers.append(type(renderer).__name__)
        return time_gcf(*args, renderer=renderer, **kw)

    def spy_render(self, models, *args, **kw):
        renders.append(len(models))
        return render(self, models, *args, **kw)

    monkeypatch.setattr(suite, "time_gcf", spy_case)
    monkeypatch.setattr(TorchRasterizer, "render", spy_render)
    tiny = [a for a in TINY if a != "onnxruntime"]
    out = tmp_path / "bench.json"
    assert main([*tiny, "--renderer", "torch", "--device", "cpu", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert renderers == ["TorchRasterizer"] * 7
    assert len(renders) >= sum(doc["iterations"][m] for m in METHODS if m.startswith("gcf"))
    assert doc["placement"] == Placement(renderer="torch").to_dict()
    assert doc["settings"]["plan"]["placement"]["renderer"] == "torch"
    assert all(_positive(doc["phases_ms"][m]["render"]["median"]) for m in METHODS[:3])
    assert (
        "gcf: torch renderer on cpu, solve on cpu, fused network on cpu" in capsys.readouterr().out
    )


def test_device_options_are_checked_and_a_missing_gpu_falls_back(capsys):
    """--device, --renderer, --network-backend go through Placement.from_options: impossible
    combinations are refused as asked; a CUDA device that is missing falls back to the CPU."""

    def placement(*args: str) -> Placement:
        return bench_placement(build_parser().parse_args(list(args)))

    assert placement() == Placement()
    assert placement("--renderer", "torch") == Placement(renderer="torch")
    with pytest.raises(ValueError, match="device must be cpu, cuda or cuda:N"):
        placement("--device", "gpu")
    with pytest.raises(ValueError, match="network_backend onnxruntime runs on the CPU only"):
        placement("--device", "cuda", "--network-backend", "onnxruntime")
    assert main(["--device", "cuda:x", "--skip-node"]) == 2
    assert "device must be cpu, cuda or cuda:N" in capsys.readouterr().err
    if torch.cuda.is_available():
        return
    assert placement("--device", "cuda:1", "--renderer", "torch") == Placement(renderer="torch")
    assert "--device cuda:1: device 'cuda:1' requested, but torch sees no CUDA device" in (
        capsys.readouterr().err
    )
    with pytest.raises(ValueError, match="network_backend cuda_graph needs device cuda"):
        placement("--device", "cuda", "--network-backend", "cuda_graph")  # after the fallback


def test_accuracy_plot_with_stored_baselines(tmp_path, lmo_root, monkeypatch):
    monkeypatch.setattr(accuracy, "GCF_ITERATIONS", {"gauss_newton": (1,), "gradient": (2,)})
    from gcf_ros.core.bop import BopDataset
    from gcf_ros.eval.harness import EvalConfig, select_instances

    ds = BopDataset(lmo_root)
    selected = select_instances(ds, ds.model_registry(), EvalConfig(lmo_root, "medium", 0, 3))
    for space, add_m in (("mask", 0.001), ("rgb", 1.0)):  # mask: every instance within 0.1 d
        instances = [
            {"scene_id": f.scene_id, "im_id": f.im_id, "inst_idx": inst.inst_idx,
             "iterations": 40, "time_ms": 1000.0, "refined": {"add_m": add_m, "diameter_m": 0.1}}
            for f, inst, *_ in selected
        ]  # fmt: skip
        doc = {"method": space, "noise": "medium", "seed": 0, "instances": instances}
        (tmp_path / f"{space}_medium_n3.json").write_text(json.dumps(doc))
    png, out = tmp_path / "acc.png", tmp_path / "acc.json"
    args = ["--accuracy-plot", str(png), "--instances", "3", "--dataset", str(lmo_root),
            "--eval-dir", str(tmp_path), "--out", str(out), "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    assert png.stat().st_size > 0
    doc = json.loads(out.read_text())
    by_series = {p["series"]: p for p in doc["points"]}
    assert set(by_series) == {"gcf gauss_newton", "gcf gradient", "mask", "rgb"}
    assert by_series["mask"]["add_s_01d"] == 1.0 and by_series["rgb"]["add_s_01d"] == 0.0
    assert by_series["mask"]["source"].endswith("mask_medium_n3.json")
    assert all(p["n"] == 3 and _positive(p["time_ms"]) for p in doc["points"])
    # The initial poses' ADD(-S) < 0.1 d, recomputed from them: 1 of 3 (ADD(-S) / diameter
    # 8.9 / 20.1 cm, 5.2 / 15.5 cm, 2.5 / 26.1 cm).
    registry = ds.model_registry()
    below = [
        add_or_adds(registry.get(inst.model_id), None, T0, inst.T_cam_obj)
        < 0.1 * registry.get(inst.model_id).diameter
        for _, inst, _, T0 in selected
    ]
    assert below == [False, False, True]
    assert doc["initial_add_s_01d"] == pytest.approx(1 / 3)


def test_stored_baseline_must_hold_the_same_instances(tmp_path):
    inst = {"scene_id": 2, "im_id": 3, "inst_idx": 1, "iterations": 40, "time_ms": 5.0,
            "refined": {"add_m": None, "diameter_m": 0.1}}  # fmt: skip
    path = tmp_path / "mask_medium_n1.json"
    path.write_text(json.dumps({"method": "mask", "noise": "medium", "seed": 0,
                                "instances": [inst]}))  # fmt: skip
    point = accuracy.stored_baseline(path, [(2, 3, 1)], seed=0)
    assert point is not None and point.add_s_01d == 0.0  # a failed estimate counts as a miss
    assert accuracy.stored_baseline(path, [(2, 3, 2)], seed=0) is None
    assert accuracy.stored_baseline(path, [(2, 3, 1)], seed=1) is None
    assert accuracy.stored_baseline(tmp_path / "absent.json", [(2, 3, 1)], seed=0) is None
    assert np.isfinite(point.time_ms)


def test_node_stream_case_reports_rates_latency_and_drops():
    """The node part with real rclpy nodes: a short 30 Hz stream with 2 detections per frame, then
    in tracking mode (detections in the first frame only) with tracking_iterations 1."""
    from gcf_ros.bench.report import format_node_table
    from gcf_ros.ros.bench_node import NodeBenchConfig, bench_node

    config = NodeBenchConfig(detections=(2,), tracking=(2,), tracking_iterations=1, duration_s=1.5)
    node = bench_node(config, progress=lambda s: None)
    assert list(node["cases"]) == ["2", "2-tracking"]
    tracked = node["cases"]["2-tracking"]
    assert tracked["tracking"] and tracked["frames_refined"] >= 2
    assert tracked["objects_per_frame"] > 0 and tracked["iterations_per_object"] == 1.0
    assert tracked["worker_ms"]["iteration_per_frame"] > 0
    case = node["cases"]["2"]
    assert case["frames_sent"] >= 30 and 0 < case["frames_refined"] <= case["frames_sent"]
    assert case["newest_refined"]  # the last frame of the stream is refined
    assert _positive(case["input_hz"]) and _positive(case["output_hz"])
    assert all(_positive(case["latency_ms"][p]) for p in ("p50", "p90", "p99"))
    assert case["latency_ms"]["p50"] <= case["latency_ms"]["p99"]
    assert _positive(case["memory_mb"]["peak_rss"])
    assert not case["tracking"] and case["iterations_per_object"] > 1
    assert len(format_node_table(node)) == 4
