"""Network inference backends (gcf_ros/gcf/inference.py): the same function as GcfNet, faster.

Every backend is compared with the module as trained ("eager"): on random networks of every
architecture option (BatchNorm statistics and heads made non-trivial), on the shipped weights, and
end to end through a refinement of a real frame.
"""

import numpy as np
import pytest
import torch

from gcf_ros.eval.sequence import coarse_instances, load_sequence
from gcf_ros.gcf.checkpoints import default_checkpoint, resolve_checkpoint
from gcf_ros.gcf.inference import (
    BACKENDS,
    FusedGcfNet,
    _BandCostVolume,
    make_backend,
)
from gcf_ros.gcf.inputs import IMAGE_CHANNELS, RENDER_CHANNELS
from gcf_ros.gcf.network import GcfNet, NetConfig, _CostVolume, load_gcf_weights
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import Detection, Refiner

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FIELD_TOL_PX, WEIGHT_TOL = 1e-4, 1e-5  # float rounding (measured: <= 2e-5 px, <= 2e-6)


def _inputs(batch: int, h: int, w: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = w or h
    image = torch.rand(batch, IMAGE_CHANNELS, h, w, generator=g)
    render = torch.randn(batch, RENDER_CHANNELS, h, w, generator=g)
    return image, render


def _trained_looking(config: NetConfig) -> GcfNet:
    """A net whose every parameter and BatchNorm statistic matters (random, then a train-mode
    pass to move the running statistics)."""
    torch.manual_seed(3)
    net = GcfNet(config)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    net.train()
    with torch.no_grad():
        net(*_inputs(4, 32, seed=5))
    return net.eval()


def _max_diff(a, b) -> tuple[float, float, float]:
    visible = 0.0
    if a.visible_logits is not None:
        visible = (a.visible_logits - b.visible_logits).abs().max().item()
    return (
        (a.field - b.field).abs().max().item(),
        (a.weight - b.weight).abs().max().item(),
        visible,
    )


@pytest.mark.parametrize(
    "config",
    [
        NetConfig(corr_radius=4),  # the shipped architecture
        NetConfig(corr_radius=0),  # the first shipped networks: no cost volume
        NetConfig(corr_radius=2, corr_scales=(1, 2, 3), mask_head=True),
        NetConfig(corr_radius=1, weight_head=False, norm="group"),
        NetConfig(corr_radius=1, norm="none", widths=(8, 16, 16, 24)),
        NetConfig(corr_radius=2, input_stride=2, field_scale=16.0, mask_head=True),
    ],
    ids=["shipped", "no-cost-volume", "mask-head", "group-norm", "no-norm", "input-stride-2"],
)
def test_fused_network_computes_what_the_trained_one_does(config):
    net = _trained_looking(config)
    fused = FusedGcfNet(net)
    image, render = _inputs(3, 48, 64)  # non-square windows, a batch
    with torch.inference_mode():
        ref, got = net(image, render), fused(image, render)
    assert got.field.shape == ref.field.shape and got.weight.shape == ref.weight.shape
    assert (got.weight_logits is None) == (ref.weight_logits is None)
    field, weight, visible = _max_diff(ref, got)
    scale = ref.field.abs().max().item()
    assert scale > 1.0  # the comparison means something: the field is far from zero
    assert field <= FIELD_TOL_PX * max(1.0, scale / 10) and weight <= WEIGHT_TOL
    assert visible <= 1e-4
    assert got.field.is_contiguous() and got.weight.is_contiguous()


def test_fusing_leaves_the_trained_network_alone():
    net = _trained_looking(NetConfig(corr_radius=4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    FusedGcfNet(net)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


@pytest.mark.parametrize("radius,h,w", [(4, 32, 32), (2, 8, 16), (1, 5, 3)])
def test_band_cost_volume_matches_one_product_per_offset(radius, h, w):
    torch.manual_seed(0)
    volume = _CostVolume(16, radius).eval()
    band = _BandCostVolume(volume)
    render = torch.randn(2, 16, h, w).contiguous(memory_format=torch.channels_last)
    image = torch.randn(2, 16, h, w).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref, got = volume(render, image), band(render, image)
    assert got.shape == ref.shape == (2, (2 * radius + 1) ** 2, h, w)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    # an offset that reaches past the window reads zeros (padding), as the reference does
    assert torch.count_nonzero(got[:, 0, 0, 0]) == 0


@pytest.mark.parametrize("name", ["gcf_lmo.pt", "gcf_lmo_s64.pt"])
@pytest.mark.parametrize("backend", ["fused", "onnxruntime"])  # the CPU ones (GPU: gpu_check)
def test_shipped_networks_run_the_same_on_every_backend(name, backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    net, _ = load_gcf_weights(resolve_checkpoint(name))
    run = make_backend(net, backend)
    image, render = _inputs(2, 64)
    with torch.inference_mode():
        ref, got = net(image, render), run(image, render)
    field, weight, _ = _max_diff(ref, got)
    assert field <= FIELD_TOL_PX and weight <= WEIGHT_TOL


def test_unknown_backends_and_devices_are_refused():
    net = GcfNet(NetConfig(widths=(8, 8, 8, 8)))
    with pytest.raises(ValueError, match="must be one of"):
        make_backend(net, "tensorrt")
    with pytest.raises(ValueError, match="runs on the CPU"):
        make_backend(GcfNet(NetConfig(widths=(8, 8, 8, 8))).to("meta"), "onnxruntime")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        NetworkPredictor(net, "cpu", backend="cuda_graph")
    assert set(BACKENDS) == {"eager", "fused", "onnxruntime", "cuda_graph", "compile"}


def test_a_refinement_step_with_the_fused_network_is_the_trained_ones(registry):
    """On the bundled real frame, the first iteration (same windows, same rendering) predicts the
    same field and takes the same step within float rounding. (Later iterations render at poses
    that differ by that rounding; a pixel that changes sides of a silhouette edge then changes the
    field more: the loop is only as repeatable as its inputs, measured in docs/performance.md.)"""
    frame = load_sequence()[0]
    dets = [Detection(c.model_id, c.T_init) for c in coarse_instances(frame)[:3]]
    first = {}
    for backend in ("eager", "fused"):
        refiner = Refiner.from_checkpoint(registry, default_checkpoint(), backend=backend)
        assert refiner.predictor.backend == backend
        records = []
        refiner.on_iteration = records.append
        refiner.refine(frame.image_rgb, frame.K, dets)
        first[backend] = records[0]
    eager, fused = first["eager"], first["fused"]
    np.testing.assert_array_equal(eager.T_cam_obj, fused.T_cam_obj)
    assert np.abs(eager.step).max() > 1e-3  # a real step, not a converged instance
    scale = eager.network.field.abs().max().item()  # tens of pixels on real windows
    assert (eager.network.field - fused.network.field).abs().max().item() <= 1e-4 * scale
    np.testing.assert_allclose(fused.step, eager.step, rtol=0, atol=1e-6)
