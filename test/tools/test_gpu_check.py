"""scripts/gpu_check.py end to end on the CPU (``--device cpu --quick``): every section runs and
writes what the GPU run will (the GPU machine's own numbers: docs/performance.md, "GPU path")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_quick_on_the_cpu(tmp_path, lmo_root):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--quick",
           "--out", str(out), "--lmo", str(lmo_root)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    sections = ("environment", "network", "renderer", "solver", "cases", "parity", "lmo",
                "network_compile")  # fmt: skip
    for key in sections:
        assert "error" not in doc[key] and "skipped" not in doc[key], (key, doc[key])
    env = doc["environment"]
    assert env["device"] == "cpu" and env["torch"] and env["packages"]["open3d"] != "missing"
    net = doc["network"]["gcf_lmo_s64.pt"]["batches"]["2"]
    assert net["eager"]["median_ms"] > 0 and net["cuda_graph"]["max_field_diff_px"] < 1e-3
    compiled = doc["network_compile"]["gcf_lmo_s64.pt"]["batches"]["1"]
    assert compiled["max_field_diff_px"] < 1e-3 and compiled["warm_up_s"] > 0
    windows = doc["renderer"]["windows"]["2"]
    assert doc["renderer"]["reference"] == "open3d_raycast_cpu"
    for name in ("torch_cpu", "pytorch3d_cpu_naive"):
        assert windows[name]["mask_iou_vs_reference_min"] > 0.95, name
        assert windows[name]["per_window_ms"] > 0
    assert doc["solver"]["2"]["max_xi_diff_vs_cpu"] == 0.0  # one device here
    for placement in ("raycast", "gpu", "gpu_pytorch3d"):
        case = doc["cases"][placement]["2"]
        assert case["per_iteration_ms"]["median"] > 0 and case["iterations"] == 2
        assert case["phases_ms"]["network"] > 0
    assert doc["cases"]["gpu"]["placement"]["renderer"] == "torch"
    assert doc["cases"]["gpu_pytorch3d"]["placement"]["renderer"] == "pytorch3d"
    for key in ("baseline_mask", "baseline_rgb"):
        assert doc["cases"][key]["per_iteration_ms"]["median"] > 0
    same = doc["parity"]["iterations_2"]["same_renderer_device_solve_and_network"]
    assert same["rot_deg_max"] < 1e-6 and same["trans_mm_max"] < 1e-6  # the CPU both times
    assert doc["parity"]["reference"] == "cpu_raycast"
    for name in ("gpu", "gpu_pytorch3d"):  # rasterizers vs ray casting
        assert doc["parity"]["iterations_2"][name]["rot_deg_max"] < 0.1, name
    lmo = doc["lmo"]
    assert lmo["n_instances"] == 2 and lmo["cpu_raycast"]["refined"]["n"] == 2
    assert lmo["gpu"]["refined"]["n"] == 2 and lmo["pose_diff_reference_vs_gpu"]["n"] == 2
    assert lmo["gpu"]["placement"]["renderer"] == "torch"
