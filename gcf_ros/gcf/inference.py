"""Inference backends of the correspondence network: the same function as ``GcfNet`` in eval mode,
computed faster.

``GcfNet`` is the network as trained (``gcf_ros.gcf.network``). For inference it is rewritten once
into ``FusedGcfNet`` (backend "fused", the default), which computes the same field and weight up
to float rounding:

- every BatchNorm is folded into the convolution before it (eval-mode statistics);
- the field and weight heads (two 3x3 convolutions on the same features) run as one;
- the fuse layers (1x1 convolution over the concatenated image, rendering and cost-volume
  features) run as accumulated matrix products over the parts, without the concatenation;
- the cost volume is one batched matrix product per scale (every rendered pixel against the
  (2r + 1) image rows around it) and a strided read of the (2r + 1)² offsets out of it, instead of
  (2r + 1)² separate products and sums.

Backends (``BACKENDS``), chosen by ``make_backend``:

- "eager": ``GcfNet`` itself (the reference);
- "fused": ``FusedGcfNet`` in torch (default; CPU and CUDA);
- "onnxruntime": ``FusedGcfNet`` exported to ONNX and run by ONNX Runtime (CPU; optional
  dependency ``onnxruntime``, ``pip install onnxruntime``). The export is checked against torch
  on random inputs when the session is made.
- "cuda_graph" (CUDA only) and "compile" (``torch.compile``; on a CPU minutes of warm-up for no
  gain, docs/performance.md): ``FusedGcfNet`` wrapped by ``gcf_ros.gcf.cuda_graph`` (batches
  padded to fixed buckets; one capture / compilation per bucket, on first use).

Every backend is called as ``backend(image, render) -> GcfOutput`` with the tensors of
``GcfNet.forward``. docs/performance.md ("Network inference backends") has the measured times and
differences; ``experiments/network_backends.py`` measures them.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.nn.utils.fusion import fuse_conv_bn_eval

from gcf_ros.gcf.network import (
    GcfNet,
    GcfOutput,
    _CostVolume,
    network_inputs,
    to_window,
)

BACKENDS = ("eager", "fused", "onnxruntime", "cuda_graph", "compile")
DEFAULT_BACKEND = "fused"
# Largest difference to "eager" that make_backend accepts from an exported ONNX model, in field
# pixels and weight units (measured on the shipped networks: <= 2e-5 px, <= 1e-6; float rounding).
EXPORT_TOLERANCE = 1e-3

Backend = Callable[[torch.Tensor, torch.Tensor], GcfOutput]


def _fold(module: nn.Module) -> nn.Module:
    """``module`` with every (Conv2d, BatchNorm2d) pair of an ``nn.Sequential`` folded into one
    convolution with bias (in place on ``module``; eval-mode statistics)."""
    for name, child in list(module.named_children()):
        if (
            isinstance(child, nn.Sequential)
            and len(child) >= 2
            and isinstance(child[0], nn.Conv2d)
            and isinstance(child[1], nn.BatchNorm2d)
        ):
            fused = fuse_conv_bn_eval(child[0].eval(), child[1].eval())
            rest = list(child)[2:]
            setattr(module, name, nn.Sequential(fused, *rest) if rest else fused)
        else:
            _fold(child)
    return module


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) channels-last -> (B * H * W, C) view (copies only if not channels-last)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _from_rows(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B * H * W, C) -> (B, C, H, W) channels-last view, spatial size of ``like``."""
    b, _, h, w = like.shape
    return rows.view(b, h, w, rows.shape[1]).permute(0, 3, 1, 2)


class _FusedPointwise(nn.Module):
    """ReLU(1x1 conv over the channel concatenation of its inputs), without concatenating:
    (B, c_i, H, W) channels-last parts -> (B, c_out, H, W) channels-last."""

    def __init__(self, conv: nn.Conv2d, split: list[int]) -> None:
        super().__init__()
        weight = conv.weight.detach()[:, :, 0, 0]  # (c_out, sum c_i)
        self.weights = nn.ParameterList(
            nn.Parameter(w.t().contiguous(), requires_grad=False)
            for w in torch.split(weight, split, dim=1)
        )  # (c_i, c_out) each
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        out = torch.addmm(self.bias, _as_rows(parts[0]), self.weights[0])
        for part, weight in zip(parts[1:], list(self.weights)[1:], strict=True):
            out.addmm_(_as_rows(part), weight)
        return _from_rows(out.relu_(), parts[0])


class _BandCostVolume(nn.Module):
    """``_CostVolume`` as one batched matrix product per window:
    (B, c, h, w) render, (B, c, h, w) image -> (B, (2r + 1)², h, w) channels-last, offsets
    row-major over (dv, du) as in ``_CostVolume``.

    For every pixel row y the rendering features (w, c) are multiplied with the (2r + 1) padded
    image rows y - r .. y + r, laid out as one (2r + 1)(w + 2r) block; the (2r + 1)² entries
    with |du| <= r are then read with strides (a band of the product)."""

    def __init__(self, volume: _CostVolume) -> None:
        super().__init__()
        self.radius = volume.radius
        self.project_render = volume.project_render
        self.project_image = volume.project_image

    def forward(self, render: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():  # ONNX has no strided views: one product per offset
            return _CostVolume.forward(self, render, image)
        r, (b, c, h, w) = self.radius, render.shape
        k, wp = 2 * r + 1, w + 2 * r
        fr = self.project_render(render).permute(0, 2, 3, 1)  # (B, h, w, c), contiguous
        fi = F.pad(self.project_image(image), (r, r, r, r)).permute(0, 2, 3, 1).contiguous()
        # (B, h, k * wp, c): the k padded rows starting at row y, a strided view of fi.
        rows = fi.as_strided((b, h, k * wp, c), (fi.stride(0), wp * c, c, 1))
        prod = torch.matmul(fr, rows.transpose(-1, -2))  # (B, h, w, k * wp), contiguous
        s = prod.stride()
        # entry (x, dv, du) sits at column dv * wp + x + du of pixel x's row.
        band = prod.as_strided((b, h, w, k, k), (s[0], s[1], s[2] + 1, wp, 1))
        corr = band.reshape(b, h, w, k * k) * (1.0 / c**0.5)
        return corr.permute(0, 3, 1, 2)  # channels-last (B, k², h, w)


class FusedGcfNet(nn.Module):
    """``GcfNet`` rewritten for inference (module docstring); same inputs and ``GcfOutput``.

    Build with ``FusedGcfNet(net)``: ``net`` is copied, not changed. Inference only (no
    gradients to the original parameters)."""

    def __init__(self, net: GcfNet) -> None:
        super().__init__()
        net = _fold(copy.deepcopy(net).eval())
        self.config = cfg = net.config
        self.image_encoder, self.render_encoder = net.image_encoder, net.render_encoder
        self.context, self.up, self.mask_head = net.context, net.up, net.mask_head
        self.corr = nn.ModuleList(
            _BandCostVolume(c) if isinstance(c, _CostVolume) else nn.Identity() for c in net.corr
        )
        extra = (2 * cfg.corr_radius + 1) ** 2
        self.fuse = nn.ModuleList()
        for w, fuse, corr in zip(cfg.widths, net.fuse, self.corr, strict=True):
            split = [w, w] + ([extra] if isinstance(corr, _BandCostVolume) else [])
            self.fuse.append(_FusedPointwise(fuse[0], split))
        heads = [net.field_head] + ([net.weight_head] if net.weight_head is not None else [])
        self.heads = nn.Conv2d(cfg.widths[0], sum(h.out_channels for h in heads), 3, padding=1)
        with torch.no_grad():
            self.heads.weight.copy_(torch.cat([h.weight for h in heads]))
            self.heads.bias.copy_(torch.cat([h.bias for h in heads]))
        self.eval().requires_grad_(False)
        self.to(memory_format=torch.channels_last)

    def forward(self, image: torch.Tensor, render: torch.Tensor) -> GcfOutput:
        """image (B, 3, S, S) in [0, 1]; render (B, 10, S, S) from ``render_input``."""
        stride = self.config.input_stride
        image, render = network_inputs(image, render, stride)
        pairs = zip(self.image_encoder(image), self.render_encoder(render), strict=True)
        fused = []
        for fuse, corr, (img, ren) in zip(self.fuse, self.corr, pairs, strict=True):
            parts = (img, ren, corr(ren, img)) if isinstance(corr, _BandCostVolume) else (img, ren)
            fused.append(fuse(*parts))
        x = self.context(fused[3])
        for up, skip in zip(self.up, reversed(fused[:3]), strict=True):
            x = up(x, skip)
        heads = to_window(self.heads(x), stride)
        field = (heads[:, :2] * self.config.field_scale).contiguous()
        visible = to_window(self.mask_head(x), stride) if self.mask_head is not None else None
        if not self.config.weight_head:
            return GcfOutput(field, torch.ones_like(field[:, :1]), None, visible)
        logits = heads[:, 2:3].contiguous()
        return GcfOutput(field, torch.sigmoid(logits), logits, visible)


class _Outputs(nn.Module):
    """``GcfOutput`` as a tuple (field, weight logits[, visible logits]), for the ONNX export."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, render: torch.Tensor):
        out = self.net(image, render)
        logits = out.weight_logits if out.weight_logits is not None else out.weight
        extra = (out.visible_logits,) if out.visible_logits is not None else ()
        return (out.field, logits, *extra)


class OnnxRuntimeNet:
    """``FusedGcfNet`` exported to ONNX and run by ONNX Runtime on the CPU, ``threads`` intra-op
    threads (0: ONNX Runtime's choice). Checked against torch at construction (``ValueError``
    beyond ``EXPORT_TOLERANCE``)."""

    def __init__(self, net: GcfNet, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(
                "network backend 'onnxruntime' needs the onnxruntime package "
                "(pip install onnxruntime); the 'fused' backend needs nothing extra"
            ) from err
        self.config = net.config
        fused = FusedGcfNet(net)  # exported, and the reference of the check (not kept)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(
            _export_onnx(fused), options, providers=["CPUExecutionProvider"]
        )
        self._check(fused)

    def __call__(self, image: torch.Tensor, render: torch.Tensor) -> GcfOutput:
        feed = {
            "image": image.detach().float().cpu().contiguous().numpy(),
            "render": render.detach().float().cpu().contiguous().numpy(),
        }
        outs = [torch.from_numpy(o) for o in self.session.run(None, feed)]
        field, logits = outs[0], outs[1]
        visible = outs[2] if len(outs) > 2 else None
        if not self.config.weight_head:
            return GcfOutput(field, torch.ones_like(field[:, :1]), None, visible)
        return GcfOutput(field, torch.sigmoid(logits), logits, visible)

    def _check(self, reference: nn.Module, size: int = 64, batch: int = 2) -> None:
        g = torch.Generator().manual_seed(0)
        c = self.config
        image = torch.rand(batch, c.image_channels, size, size, generator=g)
        render = torch.rand(batch, c.render_channels, size, size, generator=g)
        with torch.inference_mode():
            ref = reference(image, render)
        got = self(image, render)
        diff = max(
            (got.field - ref.field).abs().max().item(), (got.weight - ref.weight).abs().max().item()
        )
        if not diff <= EXPORT_TOLERANCE:
            raise ValueError(
                f"the ONNX export differs from torch by {diff:.2e} (> {EXPORT_TOLERANCE:.0e}): "
                "use the 'fused' backend"
            )


def _export_onnx(net: nn.Module) -> bytes:
    """The ONNX model (bytes) of ``net`` with dynamic batch and window size."""
    c = net.config
    image = torch.rand(1, c.image_channels, 64, 64)
    render = torch.rand(1, c.render_channels, 64, 64)
    names = ["field", "weight_logits"] + (["visible_logits"] if c.mask_head else [])
    dynamic = {name: {0: "batch", 2: "height", 3: "width"} for name in ["image", "render", *names]}
    buffer = io.BytesIO()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's tracer warnings
        torch.onnx.export(
            _Outputs(net).eval(), (image, render), buffer, dynamo=False, opset_version=17,
            input_names=["image", "render"], output_names=names, dynamic_axes=dynamic,
        )  # fmt: skip
    return buffer.getvalue()


def make_backend(
    net: GcfNet,
    backend: str = DEFAULT_BACKEND,
    threads: int = 1,
    window_size: int | None = None,
    buckets: tuple[int, ...] | None = None,
) -> Backend:
    """The callable that runs ``net`` (eval mode) with ``backend`` (one of ``BACKENDS``), on the
    device of its parameters. ``threads``: ONNX Runtime's intra-op threads (torch backends use
    torch's setting); ``window_size`` and ``buckets``: the static shapes of "cuda_graph" and
    "compile" (buckets None: ``gcf_ros.gcf.cuda_graph.DEFAULT_BUCKETS``)."""
    if backend not in BACKENDS:
        raise ValueError(f"network backend must be one of {BACKENDS}, got {backend!r}")
    device = next(net.parameters()).device
    if backend == "onnxruntime" and device.type != "cpu":
        raise ValueError(f"network backend 'onnxruntime' runs on the CPU, not {device}")
    if backend == "cuda_graph" and device.type != "cuda":
        raise ValueError(f"network backend 'cuda_graph' needs a CUDA device, not {device}")
    if backend == "eager":
        return net.eval()
    if backend == "onnxruntime":
        return OnnxRuntimeNet(net, threads)
    fused = FusedGcfNet(net).to(device)
    if backend == "fused":
        return fused
    from gcf_ros.gcf.cuda_graph import DEFAULT_BUCKETS, accelerate

    if window_size is None:
        raise ValueError(f"network backend {backend!r} needs the window size (static shapes)")
    return accelerate(fused, backend, window_size, buckets or DEFAULT_BUCKETS)
