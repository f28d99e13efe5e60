"""GcfNet: shapes, size, input checks, weights files (seeded, CPU)."""

import numpy as np
import pytest
import torch

from gcf_ros.gcf.inputs import IMAGE_CHANNELS, RENDER_CHANNELS
from gcf_ros.gcf.network import (
    GcfNet,
    NetConfig,
    load_gcf_weights,
    save_gcf_weights,
    stride_state_dict,
)
from gcf_ros.gcf.predictor import NetworkPredictor
from gcf_ros.gcf.refiner import (
    NO_NETWORK_WINDOW_SIZE,
    REJECTED,
    Detection,
    Refiner,
    RefinerConfig,
)
from gcf_ros.gcf.weights_meta import DAMPING, DEFAULT_WINDOW_SIZE, MIN_CONFIDENCE, ROTATION_DAMPING

pytestmark = pytest.mark.usefixtures("one_torch_thread")
K_TEST = np.array([[600.0, 0, 320], [0, 600, 240], [0, 0, 1]])


def _count_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())


def _inputs(batch: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, IMAGE_CHANNELS, size, size, generator=g)
    render = torch.randn(batch, RENDER_CHANNELS, size, size, generator=g)
    return image, render


def _trained_looking(net: GcfNet) -> GcfNet:
    """Non-zero heads and norm statistics, so that outputs depend on every parameter."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net.train()
    net(*_inputs(4, 16, seed=2))  # update BatchNorm running statistics
    return net.eval()


def test_output_shapes_and_ranges():
    torch.manual_seed(0)
    net = GcfNet().eval()
    image, render = _inputs(2, 64)
    with torch.inference_mode():
        out = net(image, render)
    assert out.field.shape == (2, 2, 64, 64)
    assert out.weight.shape == out.weight_logits.shape == (2, 1, 64, 64)
    assert out.field.is_contiguous()
    assert torch.all((out.weight > 0) & (out.weight < 1))
    assert torch.count_nonzero(out.field) == 0  # zero-initialised field head: "no correction"


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_norms_and_sizes(norm):
    net = _trained_looking(GcfNet(NetConfig(norm=norm)))
    for size in (16, 40):
        with torch.inference_mode():
            out = net(*_inputs(3, size))
        assert out.field.shape == (3, 2, size, size)
        assert torch.isfinite(out.field).all()


def test_parameter_budget():
    n = _count_parameters(GcfNet())
    print(f"GcfNet parameters: {n}")
    assert n <= 600_000


def test_eval_is_per_sample():
    """In eval mode a window's prediction does not depend on the rest of its batch."""
    net = _trained_looking(GcfNet())
    image, render = _inputs(4, 32)
    with torch.inference_mode():
        full = net(image, render).field
        one = net(image[2:3], render[2:3]).field
    torch.testing.assert_close(one, full[2:3], atol=1e-4, rtol=1e-4)


def test_field_scale_and_no_weight_head():
    net = GcfNet(NetConfig(weight_head=False, field_scale=2.0)).eval()
    with torch.no_grad():
        net.field_head.bias.copy_(torch.tensor([1.0, -0.5]))
    out = net(*_inputs(1, 16))
    assert out.weight_logits is None
    assert torch.equal(out.weight, torch.ones(1, 1, 16, 16))
    assert torch.allclose(out.field[0, 0], torch.full((16, 16), 2.0))
    assert torch.allclose(out.field[0, 1], torch.full((16, 16), -1.0))


def test_input_checks():
    net = GcfNet()
    image, render = _inputs(1, 16)
    with pytest.raises(ValueError, match="multiple of 8"):
        net(image[..., :12, :12], render[..., :12, :12])
    with pytest.raises(ValueError, match="render must be"):
        net(image, render[:, :9])
    with pytest.raises(ValueError, match="image must be"):
        net(render, render)
    with pytest.raises(ValueError, match="widths"):
        NetConfig(widths=(24, 32, 48))
    with pytest.raises(ValueError, match="norm"):
        NetConfig(norm="layer")


def test_input_stride_runs_the_scales_at_half_the_window():
    """input_stride 2: S x S in and out, the encoders at S/2 ... S/16, and windows must be a
    multiple of 16."""
    net = _trained_looking(GcfNet(NetConfig(input_stride=2, field_scale=16.0)))
    seen = []
    net.image_encoder.stem.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
    with torch.inference_mode():
        out = net(*_inputs(2, 64))
    assert out.field.shape == (2, 2, 64, 64) and out.weight.shape == (2, 1, 64, 64)
    assert seen == [32]
    with pytest.raises(ValueError, match="multiple of 16"):
        net(*_inputs(1, 40))
    with pytest.raises(ValueError, match="input_stride"):
        NetConfig(input_stride=3)


def test_strided_weights_compute_the_old_network_on_the_averaged_window():
    """stride_state_dict: the input_stride-2 network computes the stride-1 one on the window
    averaged over 2 x 2 blocks, its field in the full window's pixels (x 2), upsampled."""
    old = _trained_looking(GcfNet(NetConfig(corr_radius=2)))
    new = GcfNet(NetConfig(corr_radius=2, input_stride=2, field_scale=16.0))
    state, strided = stride_state_dict(old.state_dict(), old.config, new)
    new.load_state_dict(state)
    assert strided == ["image_encoder.stem.0.0.weight", "render_encoder.stem.0.0.weight"]
    new.eval()
    image, render = _inputs(2, 64)
    pool = lambda x: torch.nn.functional.avg_pool2d(x, 2)  # noqa: E731
    up = lambda x: torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear")  # noqa: E731
    with torch.inference_mode():
        small, big = old(pool(image), pool(render)), new(image, render)
    assert small.field.abs().max() > 1.0  # the comparison means something
    torch.testing.assert_close(big.field, up(2 * small.field), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(big.weight_logits, up(small.weight_logits), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="field_scale"):
        wrong = GcfNet(NetConfig(corr_radius=2, input_stride=2, field_scale=8.0))
        stride_state_dict(old.state_dict(), old.config, wrong)


def test_weights_round_trip(tmp_path):
    config = NetConfig(widths=(8, 16, 16, 24), field_scale=4.0)
    net = _trained_looking(GcfNet(config))
    meta = {"iteration": 7, "val_epe": 0.5, "command": "gcf-train", "seeds": [1, 2], "x": None}
    path = tmp_path / "sub" / "w.pt"
    save_gcf_weights(path, net, meta)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "net_config", "meta"}
    loaded, loaded_meta = load_gcf_weights(path, "cpu")
    assert loaded_meta == meta
    assert loaded.config == config
    assert not loaded.training
    image, render = _inputs(2, 16)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(image, render).field, net(image, render).field)


def test_predictor_window_size_comes_from_the_weights(tmp_path, registry):
    net = GcfNet(NetConfig(widths=(8, 8, 8, 8)))
    save_gcf_weights(tmp_path / "s48.pt", net, {"window_size": 48})
    save_gcf_weights(tmp_path / "old.pt", net, {})  # written before the size was recorded
    assert NetworkPredictor.from_weights(tmp_path / "s48.pt").window_size == 48
    assert NetworkPredictor.from_weights(tmp_path / "old.pt").window_size == DEFAULT_WINDOW_SIZE
    assert Refiner.from_checkpoint(registry, tmp_path / "s48.pt").config.window_size == 48
    explicit = Refiner.from_checkpoint(registry, tmp_path / "s48.pt", overrides={"window_size": 96})
    assert explicit.config.window_size == 96  # the caller's size wins
    silhouettes = RefinerConfig.resolve(None, terms=("region",))  # no network
    assert Refiner(registry, None, silhouettes).config.window_size == NO_NETWORK_WINDOW_SIZE


def test_solver_settings_and_threshold_come_from_the_weights_unless_set(tmp_path, registry):
    net = GcfNet(NetConfig(widths=(8, 8, 8, 8)))
    recorded = {"damping": 0.01, "rotation_damping": {"gauss_newton": 1.0}, "min_confidence": 0.01}
    save_gcf_weights(tmp_path / "tuned.pt", net, {"refiner": recorded})
    save_gcf_weights(tmp_path / "old.pt", net, {})  # written before solver settings were recorded
    tuned = Refiner.from_checkpoint(registry, tmp_path / "tuned.pt")
    assert (tuned.config.damping, tuned.config.rotation_damping) == (0.01, 1.0)
    old = Refiner.from_checkpoint(registry, tmp_path / "old.pt").config
    assert (old.damping, old.rotation_damping) == (DAMPING, ROTATION_DAMPING["gauss_newton"])
    assert tuned.config.min_confidence == 0.01 and old.min_confidence == MIN_CONFIDENCE
    # A solver the file records nothing for falls back to its default; explicit values win.
    weights = tuned.predictor.weights
    gradient = RefinerConfig.resolve(weights, solver="gradient")
    assert (gradient.damping, gradient.rotation_damping) == (0.01, ROTATION_DAMPING["gradient"])
    mine = RefinerConfig.resolve(weights, damping=0.5, rotation_damping=0.0, min_confidence=0.3)
    assert (mine.damping, mine.rotation_damping, mine.min_confidence) == (0.5, 0.0, 0.3)
    with pytest.raises(ValueError, match="solver must be one of"):
        Refiner.from_checkpoint(registry, tmp_path / "tuned.pt", overrides={"solver": "x"})
    with pytest.raises(ValueError, match="damping"):
        RefinerConfig.resolve(weights, damping=-1.0)


def test_the_recorded_settings_are_the_ones_the_loop_uses(tmp_path, registry):
    """Break the loop's use of a recorded setting and this fails: the threshold rejects, the
    window size sets the crop the network sees, the damping changes the step."""
    net = GcfNet(NetConfig(widths=(8, 8, 8, 8)))
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    T = np.eye(4)
    T[:3, 3] = (0.0, 0.0, 0.6)
    det = [Detection("obj_000005", T)]
    runs = {}
    for name, refiner_meta in {
        "lenient": {"min_confidence": 0.0},
        "strict": {"min_confidence": 1.0},
        "damped": {"min_confidence": 0.0, "damping": 1e3},
    }.items():
        path = tmp_path / f"{name}.pt"
        save_gcf_weights(path, net, {"window_size": 32, "refiner": refiner_meta})
        refiner = Refiner.from_checkpoint(registry, path, "cpu", {"iterations": 1})
        seen, predict = [], refiner.predictor.predict_with_mask
        refiner.predictor.predict_with_mask = lambda *a, s=seen, p=predict: s.append(a[0]) or p(*a)
        (runs[name],) = refiner.refine(image, K_TEST, det)
        assert seen[0].shape[1:3] == (32, 32)
    assert runs["lenient"].status != REJECTED and runs["strict"].status == REJECTED
    step = lambda r: np.abs(r.T_cam_obj - T).max()  # noqa: E731
    assert step(runs["damped"]) < 0.1 * step(runs["lenient"])


def test_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_gcf_weights(tmp_path / "absent.pt")
    net = GcfNet(NetConfig(widths=(8, 8, 8, 8)))
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": net.state_dict(), "meta": {}}, bad)
    with pytest.raises(ValueError, match="net_config"):
        load_gcf_weights(bad)
    torch.save({"state_dict": {}, "net_config": net.config.to_dict(), "meta": {}}, bad)
    with pytest.raises(ValueError, match="do not match"):
        load_gcf_weights(bad)
    torch.save({"state_dict": {}, "net_config": {"depth": 3}, "meta": {}}, bad)
    with pytest.raises(ValueError, match="unknown NetConfig"):
        load_gcf_weights(bad)
    with pytest.raises(TypeError, match=r"meta\.when"):
        save_gcf_weights(tmp_path / "w.pt", net, {"when": object()})


def test_cost_volume_is_the_local_correlation():
    from gcf_ros.gcf.network import _CostVolume

    torch.manual_seed(0)
    cv = _CostVolume(8, radius=2).eval()
    render, image = torch.randn(2, 8, 6, 7), torch.randn(2, 8, 6, 7)
    with torch.no_grad():
        out = cv(render, image)
        fr, fi = cv.project_render(render), cv.project_image(image)
    assert out.shape == (2, 25, 6, 7)
    for k, (dv, du) in enumerate((a, b) for a in range(-2, 3) for b in range(-2, 3)):
        for v, u in ((0, 0), (3, 4), (5, 6), (2, 1)):
            vv, uu = v + dv, u + du
            inside = 0 <= vv < 6 and 0 <= uu < 7
            want = (fr[:, :, v, u] * fi[:, :, vv, uu]).sum(1) / 8**0.5 if inside else 0.0
            assert torch.allclose(out[:, k, v, u], torch.as_tensor(want), atol=1e-5)


def test_grown_network_computes_what_the_old_one_did():
    from gcf_ros.gcf.network import grow_state_dict

    old = _trained_looking(GcfNet(NetConfig(widths=(16, 16, 24, 32))))
    grown = GcfNet(NetConfig(widths=(16, 16, 24, 32), corr_radius=3))
    state, keys = grow_state_dict(old.state_dict(), grown)
    grown.load_state_dict(state)
    grown.eval()
    assert any(k.startswith("corr.2.") for k in keys) and "fuse.3.0.weight" in keys
    image, render = _inputs(2, 32, seed=3)
    with torch.no_grad():
        a, b = old(image, render), grown(image, render)
    assert torch.allclose(a.field, b.field, atol=1e-4) and torch.allclose(a.weight, b.weight)
    assert _count_parameters(grown) > _count_parameters(old)
    with pytest.raises(ValueError, match="cannot grow"):
        grow_state_dict(old.state_dict(), GcfNet(NetConfig(widths=(16, 16, 24, 40))))
