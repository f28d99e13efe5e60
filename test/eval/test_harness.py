"""gcf-eval end to end on the real LM-O frames: a handful of instances per method."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from gcf_ros.core.bop import BopDataset
from gcf_ros.eval import cli
from gcf_ros.eval.cli import main
from gcf_ros.eval.harness import EvalConfig, evaluate, results_dict, select_instances
from gcf_ros.eval.methods import MethodOutput
from gcf_ros.eval.metrics import pose_errors
from gcf_ros.eval.perturb import perturb_instances
from gcf_ros.gcf.placement import Placement

METRIC_KEYS = {"add_s_01d", "deg5_cm5", "proj_5px", "median_rot_deg", "median_trans_cm",
               "median_proj_px", "acc_pi6", "acc_pi18", "n", "add_sym_01d"}  # fmt: skip


ERROR_KEYS = ("rot_deg", "trans_cm", "proj_px", "add_m", "add_sym_m")


class Recorder:
    """Wraps the method gcf-eval builds and keeps what it was given and what it returned, so
    that the reported errors can be recomputed from the poses the method actually returned."""

    def __init__(self, method) -> None:
        self.method = method
        self.label = method.label
        for name in ("config", "placement"):  # what gcf-eval's JSON records of the method
            if hasattr(method, name):
                setattr(self, name, getattr(method, name))
        self.calls: list[tuple] = []  # (frame, T_init (B, 4, 4), returned T (B, 4, 4))

    def refine(self, frame, T_init) -> MethodOutput:
        out = self.method.refine(frame, T_init)
        self.calls.append((frame, np.array(T_init), np.array(out.T_cam_obj)))
        return out

    def errors(self) -> list[dict]:
        """Per instance, in the harness's order: errors of the initial and the returned poses."""
        rows = []
        for frame, T_init, T_out in self.calls:
            for b, m in enumerate(frame.models):
                T_gt = frame.T_gt_all[frame.refine_idx[b]]
                rows.append({
                    stage: pose_errors(m.verts_obj, m.diameter, m.symmetry, frame.K, T, T_gt)
                    for stage, T in (("initial", T_init[b]), ("refined", T_out[b]))
                })  # fmt: skip
        return rows


@pytest.fixture
def recorded(monkeypatch) -> list[Recorder]:
    """gcf-eval's methods wrapped in a Recorder (the last one built is ``recorded[-1]``)."""
    made: list[Recorder] = []
    build = cli.make_method

    def make_method(args, registry):
        made.append(Recorder(build(args, registry)))
        return made[-1]

    monkeypatch.setattr(cli, "make_method", make_method)
    return made


def _assert_reported_errors_are_those_of_the_returned_poses(results: dict, rec: Recorder) -> None:
    """The JSON's per-instance errors are those of the poses the method returned (refined) and
    of the poses it was given (initial): the harness reports no other pose as "refined"."""
    recomputed = rec.errors()
    assert len(recomputed) == len(results["instances"]) == results["n_instances"]
    for row, errs in zip(results["instances"], recomputed, strict=True):
        for stage in ("initial", "refined"):
            for k in ERROR_KEYS:
                assert row[stage][k] == pytest.approx(getattr(errs[stage], k), rel=1e-9), (
                    stage,
                    k,
                )


def _moved(rec: Recorder) -> bool:
    """Every returned pose differs from its initial pose."""
    return all(not np.allclose(T_out, T0, atol=1e-9) for _, T0, T_out in rec.calls)


def _run(tmp_path, *args) -> dict:
    out = tmp_path / "results.json"
    code = main(["--dataset", str(tmp_path.parent / "lmo"), *args, "--out", str(out)])
    assert code == 0
    return json.loads(out.read_text())


@pytest.fixture
def lmo_link(tmp_path, lmo_root):
    (tmp_path.parent / "lmo").unlink(missing_ok=True)
    (tmp_path.parent / "lmo").symlink_to(lmo_root)
    return tmp_path


def test_selection_follows_the_protocol(lmo_root):
    dataset = BopDataset(lmo_root)
    registry = dataset.model_registry()
    config = EvalConfig(lmo_root, noise="large", seed=3, max_instances=12)
    selected = select_instances(dataset, registry, config)
    assert len(selected) == 12
    assert all(visib >= 0.3 for _, _, visib, _ in selected)
    # Initial poses are the protocol's perturbation of the ordered list, truncated afterwards.
    everything = select_instances(dataset, registry, EvalConfig(lmo_root, "large", 3))
    expected = perturb_instances([inst.T_cam_obj for _, inst, _, _ in everything], "large", 3)
    np.testing.assert_array_equal(np.stack([s[3] for s in selected]), np.stack(expected[:12]))


def test_none_reports_initial_poses_as_refined(lmo_link, capsys):
    results = _run(lmo_link, "--method", "none", "--noise", "small", "--max-instances", "6")
    assert results["n_instances"] == 6 and results["method"] == "none"
    assert set(results["initial"]) == METRIC_KEYS
    assert results["initial"] == results["refined"]
    assert set(results["per_visibility"]) == {"[0.3, 0.6)", "[0.6, 1.0]"}
    assert sum(v["initial"]["n"] for v in results["per_object"].values()) == 6
    assert "none @ small" in capsys.readouterr().out
    # Small noise: at most 5 degrees by construction.
    assert max(i["initial"]["rot_deg"] for i in results["instances"]) <= 5.0 + 1e-6


def test_harness_reports_the_errors_of_the_returned_poses(lmo_root):
    """An oracle method that returns the ground truth: the refined errors are exactly zero (and
    every ADD(-S) < 0.1 d) while the initial ones are not, in the per-instance records and in
    the summary. Cheap (no network): it pins what ``evaluate`` calls refined."""

    class Oracle:
        label = "oracle"

        def refine(self, frame, T_init):
            T = frame.T_gt_all[frame.refine_idx]
            return MethodOutput(T.copy(), np.full(len(T_init), 7), 0.01)

    dataset = BopDataset(lmo_root)
    registry = dataset.model_registry()
    selected = select_instances(dataset, registry, EvalConfig(lmo_root, "medium", 0, 6))
    records = evaluate(selected, registry, Oracle())
    assert len(records) == 6 and all(r.iterations == 7 for r in records)
    for r in records:
        assert (r.refined.rot_deg, r.refined.trans_cm, r.refined.add_m) == (0.0, 0.0, 0.0)
        assert r.refined.proj_px == pytest.approx(0.0, abs=1e-9)
        assert r.initial.trans_cm > 0.0 and r.initial.proj_px > 0.1
    results = results_dict(records, {"method": "oracle"})
    assert results["refined"]["add_s_01d"] == 1.0 and results["refined"]["median_proj_px"] < 1e-9
    assert results["initial"]["median_proj_px"] > 1.0


@pytest.mark.parametrize("method", ["mask", "rgb"])
def test_soft_render_baselines_move_the_poses_and_are_reported(
    lmo_link, recorded, method, one_torch_thread
):
    """One instance, three Adam steps (slow baselines: ~3 s): the poses move, and what the JSON
    reports as refined are the errors of the poses the baseline returned."""
    args = ["--method", method, "--noise", "medium", "--max-instances", "1", "--iterations", "3"]
    results = _run(lmo_link, *args)
    assert results["n_instances"] == 1
    assert results["label"] == ("mask (oracle mask)" if method == "mask" else "rgb")
    assert all(i["iterations"] == 3 for i in results["instances"])
    assert results["time"]["per_iteration_ms_median"] > 0
    assert results["config"]["method_config"]["space"] == method
    assert _moved(recorded[-1])
    _assert_reported_errors_are_those_of_the_returned_poses(results, recorded[-1])
    (inst,) = results["instances"]
    assert inst["refined"] != inst["initial"]


def test_gcf_eval_with_the_shipped_weights_beats_the_initial_poses(
    lmo_link, recorded, one_torch_thread
):
    """`gcf-eval --method gcf --terms field` (shipped S = 128 weights, Gauss-Newton, 8
    iterations) on the protocol's first 10 LM-O instances at medium noise, seed 0 (~5 s, one
    thread).

    Requirement: refinement lowers the median ADD(-S), the median 2D error and the median
    rotation error of the initial poses, by about today's factors with a 1.5x margin.
    Measured (today's code): median ADD(-S) 7.15 -> 2.70 cm (x0.38; limit x0.55), median 2D
    15.05 -> 4.52 px (x0.30; limit x0.45), median rotation 8.68 -> 7.77 deg (x0.90; limit: below
    the initial, the 1.5x margin would allow more), ADD(-S) < 0.1 d 20 % -> 20 % (not lower)."""
    # The learned field alone (--terms field): this guards the harness's GCF path and the network;
    # the default terms (field + region) are held to real-frame limits by the node test.
    results = _run(
        lmo_link,
        "--method",
        "gcf",
        "--terms",
        "field",
        "--noise",
        "medium",
        "--max-instances",
        "10",
    )
    assert results["n_instances"] == 10 and results["label"].startswith("gcf")
    rec = recorded[-1]
    assert _moved(rec)
    _assert_reported_errors_are_those_of_the_returned_poses(results, rec)

    def median(stage, key):
        return float(np.median([i[stage][key] for i in results["instances"]]))

    add0, add1 = median("initial", "add_m"), median("refined", "add_m")
    assert add1 < 0.55 * add0, (add0, add1)
    px0, px1 = results["initial"]["median_proj_px"], results["refined"]["median_proj_px"]
    assert px1 < 0.45 * px0, (px0, px1)
    rot0, rot1 = results["initial"]["median_rot_deg"], results["refined"]["median_rot_deg"]
    assert rot1 < rot0, (rot0, rot1)
    assert results["refined"]["add_s_01d"] >= results["initial"]["add_s_01d"]


def _rotation_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))


def test_gcf_with_the_torch_rasterizer_reaches_the_ray_casting_poses(
    lmo_link, recorded, one_torch_thread
):
    """gcf-eval --renderer torch --device cpu (the torch rasterizer, whose masks are within IoU
    0.993 of ray casting) against the default (ray casting) on the first 2 LM-O instances, S = 64
    network, 4 iterations (~4 s): both move the poses (by 14 and 9 cm) to within 0.25 deg and
    1.5 mm of each other, but not to the same bits (another renderer ran); the JSON records each
    placement. Measured: 0.0001 / 0.0009 deg, 0.011 / 0.014 mm until session 12; up to 0.13 deg
    and 0.64 mm since the silhouette lines scale with the window (at 64 px they are half as long,
    their normal blur 0.75 px and their weights up to 16 / px^2, so the renderers' edge-pixel
    differences weigh more)."""
    args = ("--method", "gcf", "--max-instances", "2", "--checkpoint", "gcf_lmo_s64.pt",
            "--iterations", "4")  # fmt: skip
    default = _run(lmo_link, *args)
    rasterized = _run(lmo_link, *args, "--renderer", "torch", "--device", "cpu")
    assert default["config"]["placement"] == Placement().to_dict()  # ray casting, fused, CPU
    assert rasterized["config"]["placement"] == Placement(renderer="torch").to_dict()
    assert rasterized["config"]["renderer"] == "torch"
    (_, T0, T_ray), (_, T0_again, T_torch) = recorded[0].calls[0], recorded[1].calls[0]
    np.testing.assert_array_equal(T0, T0_again)
    assert _moved(recorded[0]) and _moved(recorded[1])
    assert not np.array_equal(T_ray, T_torch)
    for a, b in zip(T_ray, T_torch, strict=True):
        rot = _rotation_deg(a[:3, :3].T @ b[:3, :3])
        trans_mm = 1e3 * np.linalg.norm(a[:3, 3] - b[:3, 3])
        assert rot < 0.25 and trans_mm < 1.5, (rot, trans_mm)
    _assert_reported_errors_are_those_of_the_returned_poses(rasterized, recorded[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--method", "gcf", "--device", "gpu"), "device must be cpu, cuda or cuda:N"),
        (("--method", "gcf", "--network-backend", "cuda_graph"), "cuda_graph needs device cuda"),
        (
            ("--method", "mask", "--renderer", "torch"),
            "--renderer: gcf settings, not for --method mask",
        ),
    ],
)
def test_impossible_placements_exit_with_a_message(tiny_bop, capsys, args, message):
    base = ["--dataset", str(tiny_bop), "--dataset-unit", "m", "--min-visib", "0"]
    assert main([*base, *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_a_missing_cuda_device_is_one_clear_error(tiny_bop, capsys):
    """No fallback in gcf-eval: asked for the GPU, it says there is none (before any refinement)."""
    base = ["--dataset", str(tiny_bop), "--dataset-unit", "m", "--method", "gcf"]
    assert main([*base, "--device", "cuda"]) == 2
    assert capsys.readouterr().err == (
        "gcf-eval: device 'cuda' requested, but torch sees no CUDA device here "
        "(torch.cuda.is_available() is false)\n"
    )


def test_gcf_without_weights_exits_with_a_message(lmo_link, capsys):
    missing = lmo_link / "missing.pt"
    code = main(
        ["--dataset", str(lmo_link.parent / "lmo"), "--method", "gcf", "--checkpoint", str(missing)]
    )
    assert code == 2
    assert "weights" in capsys.readouterr().err


def test_plot_from_results(lmo_link):
    from gcf_ros.eval.report import main as report_main

    _run(lmo_link, "--method", "none", "--max-instances", "4")
    png = lmo_link / "curves.png"
    assert report_main([str(lmo_link / "results.json"), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000


def test_set_overrides_are_typed_by_the_refiner_config():
    from gcf_ros.eval.cli import parse_overrides

    out = parse_overrides(
        ["field_stop=3", "window_size=96", "silhouette_scale=2", "terms=field,region",
         "lines=samples:4;steps_px:2,1", "min_confidence=0.1"]
    )  # fmt: skip
    assert out["field_stop"] == 3 and isinstance(out["field_stop"], int)
    assert out["window_size"] == 96 and isinstance(out["window_size"], int)
    assert out["silhouette_scale"] == 2.0 and out["terms"] == ("field", "region")
    assert out["lines"].samples == 4 and out["lines"].steps_px == (2.0, 1.0)
    assert out["min_confidence"] == 0.1
    assert parse_overrides(["field_stop=none"])["field_stop"] is None
    coarse = parse_overrides(["coarse_window_size=64", "coarse_iterations=4"])
    assert coarse == {"coarse_window_size": 64, "coarse_iterations": 4}
    assert isinstance(coarse["coarse_window_size"], int)
    with pytest.raises(ValueError):  # None only where a field may be None
        parse_overrides(["min_confidence=none"])
    assert parse_overrides(["region=statistics:mask"])["region"].statistics == "mask"
    with pytest.raises(ValueError, match="not a field of lines"):
        parse_overrides(["lines=bogus:1"])
    with pytest.raises(ValueError, match="RefinerConfig field"):
        parse_overrides(["no_such_setting=1"])


def test_iteration_stats_count_the_early_stops():
    """Iterations run per instance, and which share stopped early (CONVERGED before the limit):
    a CONVERGED instance at the limit, a REJECTED one before it and one without a status do not
    count as early stops."""
    from gcf_ros.eval.cli import format_iterations
    from gcf_ros.eval.harness import InstanceRecord, iteration_stats

    def record(iterations, status):
        e = pose_errors(np.zeros((1, 3)), 0.1, None, np.eye(3), np.eye(4), np.eye(4))
        return InstanceRecord(1, 1, 0, 1, 1.0, e, e, iterations, 10.0, {"status": status})

    # statuses: 0 CONVERGED, 1 MAX_ITERATIONS, 2 REJECTED (gcf_ros.gcf.refiner)
    records = [record(3, 0), record(5, 0), record(8, 0), record(8, 1), record(2, 2)]
    stats = iteration_stats(records, 8)
    assert stats["histogram"] == {"2": 1, "3": 1, "5": 1, "8": 2}
    assert stats["mean"] == pytest.approx(26 / 5) and stats["max"] == 8
    assert stats["stopped_early"] == pytest.approx(2 / 5)
    assert stats["converged"] == pytest.approx(3 / 5)
    assert "stopped early (CONVERGED before the limit) 40.0 %" in format_iterations(stats)
    unknown = iteration_stats(records, None)
    assert unknown["stopped_early"] is None and unknown["converged"] == pytest.approx(3 / 5)
    no_status = iteration_stats([dataclasses.replace(r, scores=None) for r in records], 8)
    assert no_status["converged"] is None and no_status["stopped_early"] is None
    assert results_dict(records, {}, 8)["iterations"] == stats
