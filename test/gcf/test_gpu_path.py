"""The GPU path (issue 21): the refinement loop with the rendering, the field term and the solve on
a chosen device, a frame's windows in one rasterizer batch (torch, PyTorch3D), the network's
CUDA-graph / compile wrappers, and the placements of the user's options (Placement.from_options).

Every device-parametrised test runs on the CPU everywhere (the same code path with device "cpu")
and on CUDA where a GPU is visible; scripts/gpu_check.py measures the rest on a GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gcf_ros.bench.cases import simulated_depth
from gcf_ros.bench.frame import VariantRegistry, load_bench_frame
from gcf_ros.core.render import DeviceRenderer, RenderOutput
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.core.render.torch_raster import TorchRasterizer
from gcf_ros.gcf.cuda_graph import CompiledNet, CudaGraphNet, accelerate, bucket_for, warm_up
from gcf_ros.gcf.network import GcfNet, NetConfig
from gcf_ros.gcf.placement import Placement, build_refiner, placement_renderer
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Detection, Refiner, RefinerConfig
from gcf_ros.gcf.solver import TermWeight, solve_terms
from gcf_ros.gcf.terms.base import point_residuals
from gcf_ros.gcf.terms.field import field_residuals

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
S64 = "gcf_lmo_s64.pt"  # the S = 64 network: 4x fewer pixels than the default's


@pytest.fixture(scope="module")
def bench(registry):
    """The bench frame, 3 of its objects, and a registry whose render models of those have 500
    faces (PyTorch3D's CPU rasterizer tests every face at every pixel)."""
    frame = load_bench_frame()
    idx = frame.evaluated[:3]
    ids = [frame.model_ids[i] for i in idx]
    small = {m: registry.render_model(m).simplified(500) for m in set(ids)}
    return frame, ids, frame.T_init[idx], VariantRegistry(registry, small)


def _poses(results) -> np.ndarray:
    return np.stack([r.T_cam_obj for r in results])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("renderer", ["torch", "pytorch3d"])
def test_windows_in_one_batch_equal_one_at_a_time(bench, device, renderer, one_torch_thread):
    """All windows of a frame in one rasterizer batch (render, network, field term and solve on
    ``device``) give the per-window results, and the device's poses are the CPU's."""
    frame, ids, T0, small = bench
    # mutual occlusion off: with it, a window's result depends on the others in its call
    settings = {"iterations": 3, "mutual_occlusion": False}
    refiner = build_refiner(small, Placement.gpu(device, "eager", renderer), S64, settings)
    batched = _poses(refiner.refine_poses(frame.image_rgb, frame.K, ids, T0))
    single = np.stack([
        _poses(refiner.refine_poses(frame.image_rgb, frame.K, [m], T0[b : b + 1]))[0]
        for b, m in enumerate(ids)
    ])  # fmt: skip
    assert np.abs(batched - T0).max() > 1e-3  # the poses moved
    np.testing.assert_allclose(batched, single, atol=1e-5)
    if device != "cpu":
        cpu = build_refiner(small, Placement(renderer=renderer), S64, settings)
        reference = _poses(cpu.refine_poses(frame.image_rgb, frame.K, ids, T0))
        np.testing.assert_allclose(batched, reference, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_rendering_on_the_device_gives_the_cpu_poses(bench, device, one_torch_thread):
    """Ray casting with its output moved to ``device`` (field term and solve there; region and
    depth terms on the CPU; a depth image, so the depth term runs) against all on the CPU."""
    frame, ids, T0, small = bench
    predictor = NetworkPredictor.from_weights(_s64(), device)
    config = RefinerConfig.resolve(predictor.weights, iterations=2, depth_iterations=2)
    depth = simulated_depth(frame, small)
    dets = [Detection(m, T) for m, T in zip(ids, T0, strict=True)]
    poses = {}
    for name, renderer in (("cpu", None), ("device", DeviceRenderer(RaycastRenderer(), device))):
        refiner = Refiner(small, predictor, config, renderer=renderer)
        results = refiner.refine(frame.image_rgb, frame.K, dets, depth_m=depth)
        assert all("depth_inliers" in r.scores for r in results)
        poses[name] = _poses(results)
    np.testing.assert_allclose(
        poses["device"], poses["cpu"], atol=1e-8 if device == "cpu" else 1e-4
    )


def _s64():
    from gcf_ros.gcf.checkpoints import find_checkpoint

    return find_checkpoint(S64)


def _rows(device: str, B: int = 3, N: int = 200, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = 0.05 * (torch.rand(B, N, 3, generator=g, dtype=torch.float64) - 0.5)
    T = torch.eye(4, dtype=torch.float64).repeat(B, 1, 1)
    T[:, :3, 3] = torch.tensor([0.01, -0.02, 0.6], dtype=torch.float64)
    K = torch.tensor([[300.0, 0, 32], [0, 300.0, 32], [0, 0, 1]], dtype=torch.float64).repeat(
        B, 1, 1
    )
    r = torch.randn(B, N, 2, generator=g, dtype=torch.float64)
    w = torch.rand(B, N, generator=g, dtype=torch.float64)
    return point_residuals(K, T, X.to(device), r, w)  # K, T on the CPU: moved to X's device


@pytest.mark.parametrize("device", DEVICES)
def test_solve_terms_gathers_the_terms_on_one_device(device):
    """Rows on ``device`` and on the CPU: each term's normal equations are formed where its rows
    are and solved together on ``device``; the step is the all-CPU one."""
    on_device, on_cpu = _rows(device, seed=0), _rows("cpu", seed=1)
    assert on_device.J.device.type == torch.device(device).type
    weights = (TermWeight(1.0, 0.1, 5.0), TermWeight(2.0, 0.1))
    systems = [(on_device, weights[0]), (on_cpu, weights[1])]
    reference = solve_terms([(_rows("cpu", seed=0), weights[0]), (on_cpu, weights[1])])
    for kind in ("gauss_newton", "gradient"):
        xi = solve_terms(systems, kind)  # the first term's device
        assert xi.device.type == torch.device(device).type and xi.dtype == torch.float64
        expected = solve_terms([(_rows("cpu", seed=0), weights[0]), (on_cpu, weights[1])], kind)
        torch.testing.assert_close(xi.cpu(), expected, rtol=1e-9, atol=1e-12)
    xi_cpu = solve_terms(systems, device="cpu")
    assert xi_cpu.device.type == "cpu"
    torch.testing.assert_close(xi_cpu, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_field_rows_follow_the_rendering(bench, device):
    """The field term computes on the rendering's device with a field given on the CPU."""
    frame, ids, T0, small = bench
    from gcf_ros.core.camera import crop_window_for_box

    models = [small.render_model(m) for m in ids]
    K_win = torch.from_numpy(np.stack([
        crop_window_for_box(frame.K, T, m.bbox_corners_obj, 64).K_window(frame.K)
        for m, T in zip(models, T0, strict=True)
    ]))  # fmt: skip
    T = torch.from_numpy(T0)
    render = RaycastRenderer().render(models, T, K_win, 64)
    field = torch.randn(len(ids), 64, 64, 2, generator=torch.Generator().manual_seed(0))
    weight = render.mask.float()
    expected = field_residuals(K_win, T, render, field, weight)
    rows = field_residuals(K_win, T, render.to(device), field, weight)
    assert rows.J.device.type == torch.device(device).type
    torch.testing.assert_close(rows.J.cpu(), expected.J, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(rows.r.cpu(), expected.r)


def test_device_renderer_moves_every_field():
    class Fixed:
        def render(self, models, T_cam_obj, K_window, size, shading=None):
            f = torch.zeros(len(models), size, size, 3)
            return RenderOutput(f[..., 0] > 0, f[..., 0], f, f, f)

    out = DeviceRenderer(Fixed(), "meta").render([None, None], None, None, 8)
    assert all(getattr(out, k).device.type == "meta" for k in ("mask", "depth", "xyz_obj", "rgb"))
    assert out.mask.shape == (2, 8, 8)


def test_placements_and_their_renderers():
    assert isinstance(placement_renderer(Placement()), RaycastRenderer)
    moved = placement_renderer(Placement(solve_device="meta"))
    assert isinstance(moved, DeviceRenderer) and moved.device.type == "meta"
    gpu = Placement.gpu()
    assert (gpu.renderer, gpu.render_device, str(gpu.solve_on), gpu.network_device) == (
        "torch", "cuda", "cuda", "cuda",
    )  # fmt: skip
    assert gpu.network_backend == "cuda_graph"
    assert isinstance(placement_renderer(Placement.gpu("cpu", "eager")), TorchRasterizer)
    p3d = Placement.gpu(renderer="pytorch3d")
    assert p3d.renderer == "pytorch3d" and p3d.bin_size is None  # PyTorch3D's binning on CUDA
    assert Placement.gpu("cpu", "eager", "pytorch3d").bin_size == 0  # naive: its CPU mode
    with pytest.raises(ValueError, match="CPU only"):
        Placement(render_device="cuda")
    with pytest.raises(ValueError, match="needs network_device cuda"):
        Placement(network_backend="cuda_graph")
    with pytest.raises(ValueError, match="renderer must be"):
        Placement(renderer="opengl")


def test_user_options_map_to_placements():
    """Placement.from_options, the one parser of the node's and the CLIs' device / renderer /
    network_backend: cpu is the default as before (ray casting, fused), cuda the GPU path."""
    assert Placement.from_options() == Placement.from_options("cpu", "auto", "auto") == Placement()
    torch_cpu = Placement.from_options("cpu", "torch")
    assert torch_cpu == Placement(renderer="torch")  # fused network, solve on the CPU
    assert isinstance(placement_renderer(torch_cpu), TorchRasterizer)
    assert Placement.from_options("cpu", "pytorch3d", "eager").bin_size == 0
    assert Placement.from_options("cpu", network_backend="onnxruntime").network_backend == (
        "onnxruntime"
    )
    # GPU options, without asking this machine for the device
    assert Placement.from_options("cuda", check_device=False) == Placement.gpu("cuda")
    p3d = Placement.from_options("cuda:1", "pytorch3d", "compile", check_device=False)
    assert p3d == Placement.gpu("cuda:1", "compile", "pytorch3d") and p3d.bin_size is None
    fused = Placement.from_options("cuda", network_backend="fused", check_device=False)
    assert fused == Placement.gpu("cuda", "fused")
    raycast = Placement.from_options("cuda:2", "raycast", check_device=False)  # network only
    assert raycast == Placement(network_device="cuda:2", network_backend="cuda_graph")
    assert str(raycast.solve_on) == "cpu"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("gpu",), r"device must be cpu, cuda or cuda:N \(N = 0, 1, ...\); got 'gpu'"),
        (("cuda:x",), "device must be cpu, cuda or cuda:N"),
        (("CPU",), "device must be cpu, cuda or cuda:N"),
        (
            ("cpu", "opengl"),
            "renderer must be one of auto, raycast, pytorch3d, torch; got 'opengl'",
        ),
        (("cpu", "auto", "trt"), "network_backend must be one of auto, eager, fused, onnxruntime"),
        (("cpu", "torch", "cuda_graph"), "network_backend cuda_graph needs device cuda or cuda:N"),
        (("cuda", "auto", "onnxruntime"), "network_backend onnxruntime runs on the CPU only"),
        (
            ("cuda:1", "raycast", "onnxruntime"),
            "onnxruntime runs on the CPU only; got device cuda:1",
        ),
    ],
)
def test_impossible_options_are_refused_in_their_terms(options, message):
    with pytest.raises(ValueError, match=message):
        Placement.from_options(*options, check_device=False)


def test_a_missing_cuda_device_is_refused_before_anything_runs(monkeypatch):
    """cuda on a machine without CUDA, or cuda:N beyond its devices: one clear ValueError from
    the options, not a failure deep inside the renderer or the network."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"'cuda' requested, but torch sees no CUDA device here"):
        Placement.from_options("cuda")
    assert Placement.from_options("cpu") == Placement()  # the CPU needs nothing
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"'cuda:2' requested, but torch sees 2 CUDA device\(s\)"):
        Placement.from_options("cuda:2", "torch")
    assert Placement.from_options("cuda:1") == Placement.gpu("cuda:1")


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    net = GcfNet(NetConfig(widths=(8, 8, 8, 8), corr_radius=1)).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the rows' independence matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net


def _inputs(batch: int, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g), torch.rand(batch, 10, size, size,
                                                                     generator=g)  # fmt: skip


def test_bucket_for():
    assert [bucket_for(b, (1, 4, 16)) for b in (1, 2, 4, 5, 16, 17)] == [1, 4, 4, 16, 16, None]


def test_cuda_graph_buffers_pad_and_slice_like_the_eager_net(small_net, one_torch_thread):
    """Without capture (a CPU) the static-buffer path runs: padded batches, stale rows of a
    larger earlier call, and batches beyond every bucket give the eager outputs."""
    graphed = CudaGraphNet(small_net, 16, buckets=(1, 4), capture=False)
    assert not graphed.capture
    for batch, seed in ((4, 0), (3, 1), (1, 2), (6, 3)):
        image, render = _inputs(batch, seed=seed)
        with torch.inference_mode():
            expected = small_net(image, render)
        out = graphed(image, render)
        assert out.field.shape == (batch, 2, 16, 16)
        torch.testing.assert_close(out.field, expected.field, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out.weight, expected.weight, rtol=1e-4, atol=1e-5)
    assert graphed.calls == {"static": 3, "eager": 1}  # 6 > the largest bucket
    graphed(*_inputs(1, size=24))  # another window size: eager
    assert graphed.calls["eager"] == 2
    out = graphed(*_inputs(1))
    assert out.field.data_ptr() != graphed(*_inputs(1)).field.data_ptr()  # copies, not buffers
    assert set(warm_up(graphed)) == {1, 4}
    with pytest.raises(ValueError, match="CUDA device"):
        CudaGraphNet(small_net, 16, capture=True)
    with pytest.raises(ValueError, match="multiple of 8"):
        CudaGraphNet(small_net, 12)


def test_compiled_net_pads_to_buckets(small_net, one_torch_thread):
    """torch.compile's machinery (its eager backend: no compiler needed) behind the buckets."""
    compiled = accelerate(small_net, "compile", 16, buckets=(4,), compile_backend="eager")
    assert isinstance(compiled, CompiledNet)
    image, render = _inputs(3)
    with torch.inference_mode():
        expected = small_net(image, render)
    out = compiled(image, render)
    torch.testing.assert_close(out.field, expected.field, rtol=1e-4, atol=1e-5)
    assert accelerate(small_net, "eager", 16) is small_net
    with pytest.raises(ValueError, match="backend must be"):
        accelerate(small_net, "tensorrt", 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_replays_match_the_eager_net(small_net):
    net = small_net.to("cuda")
    graphed = CudaGraphNet(net, 16, buckets=(1, 4))
    assert graphed.capture
    for batch in (4, 3, 1):
        image, render = (x.cuda() for x in _inputs(batch, seed=batch))
        with torch.inference_mode():
            expected = net(image, render)
        torch.testing.assert_close(
            graphed(image, render).field, expected.field, rtol=1e-4, atol=1e-5
        )
    small_net.to("cpu")
