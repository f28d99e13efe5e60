"""The correspondence network: image window + rendering at the current pose -> field and weight.

Two encoders of residual blocks (one for the real image, one for the 10-channel rendering input of
``gcf_ros.gcf.inputs``; different domains, different weights) downsample by 2 per scale to 1/8.
At every scale their features are concatenated and fused by a 1x1 convolution. At the scales
``corr_scales`` (default 1/4 and 1/8) a local cost volume joins them: the dot products of each
rendered pixel's (projected) feature with the image features at every offset within
``corr_radius`` (±16 px at 1/4, ±32 px at 1/8 for r = 4), the explicit matching evidence that
optical-flow networks (PWC-Net, RAFT) rely on for sub-pixel accuracy. A small context block at 1/8
widens the receptive field past the largest expected displacement (~30 px at S = 64) and a U-Net
decoder brings the fused features back to full resolution. ``corr_radius = 0`` leaves the cost
volume out (the first shipped networks): matching is then learned from the fused features alone.

Heads: the field (2 channels, (u, v) window pixels, predicted as field / ``field_scale``) and the
weight (1 channel, sigmoid: confidence in (0, 1)). Only rendered foreground pixels are meaningful.

Weights files (``save_gcf_weights`` / ``load_gcf_weights``) are plain dicts loadable with
``torch.load(..., weights_only=True)``: {"state_dict", "net_config", "meta"}.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from gcf_ros.gcf.inputs import IMAGE_CHANNELS, RENDER_CHANNELS

_GROUPS = 8  # GroupNorm groups (every width is a multiple of 8)
_IMAGE_MEAN, _IMAGE_STD = 0.5, 0.25
_NORMS = ("batch", "group", "none")
WEIGHTS_KEYS = ("state_dict", "net_config", "meta")


@dataclass(frozen=True)
class NetConfig:
    """Architecture of ``GcfNet``.

    widths: encoder / decoder channels per scale, full resolution -> 1/8 (4 scales).
    field_scale: the field head predicts field / field_scale (window pixels).
    norm: "batch" (fastest on CPU in eval mode), "group" (batch-size independent) or "none".
    corr_radius: cost-volume radius r in feature pixels ((2r + 1)² offsets); 0: no cost volume.
    corr_scales: scale indices (0: full resolution ... 3: 1/8) that get a cost volume.
    mask_head: also predict the object's visible mask in the image window (logits), from the
        decoder's full-resolution features (the silhouette evidence of ``gcf_ros.gcf.terms``).
    input_stride: 1, or 2 for the faster network: the S x S inputs are pixel-unshuffled to an
        S/2 x S/2 grid of 4x the channels (no pixel is dropped), the four scales run at 1/2 ... 1/16
        of the window, and the heads' outputs are upsampled (bilinear) back to S x S. A quarter
        of the pixels at every scale; the field stays in window pixels.
    """

    image_channels: int = IMAGE_CHANNELS
    render_channels: int = RENDER_CHANNELS
    widths: tuple[int, ...] = (24, 32, 48, 64)
    field_scale: float = 8.0
    weight_head: bool = True
    norm: str = "batch"
    corr_radius: int = 0
    corr_scales: tuple[int, ...] = (2, 3)
    mask_head: bool = False
    input_stride: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "corr_scales", tuple(int(i) for i in self.corr_scales))
        if self.corr_radius < 0 or any(not 0 <= i < 4 for i in self.corr_scales):
            raise ValueError(f"need corr_radius >= 0 and corr_scales in 0..3, got {self}")
        if len(self.widths) != 4 or any(w % _GROUPS for w in self.widths):
            raise ValueError(f"widths must be 4 multiples of {_GROUPS}, got {self.widths}")
        if self.norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {self.norm!r}")
        if self.input_stride not in (1, 2):
            raise ValueError(f"input_stride must be 1 or 2, got {self.input_stride}")

    @property
    def size_multiple(self) -> int:
        """S must be a multiple of this (three stride-2 stages after the input stride)."""
        return 8 * self.input_stride

    def to_dict(self) -> dict:
        """Plain dict (lists, no tuples) for YAML / weights files."""
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        d["corr_scales"] = list(self.corr_scales)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown NetConfig keys: {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class GcfOutput:
    """What ``GcfNet`` predicts for B windows of S x S pixels.

    Attributes:
        field: (B, 2, S, S) correspondence field in window pixels, (u, v) order.
        weight: (B, 1, S, S) confidence in (0, 1); all ones when the net has no weight head.
        weight_logits: (B, 1, S, S) pre-sigmoid weight (for the training loss), or None.
        visible_logits: (B, 1, S, S) logits of "the object is visible at this window pixel" (all
            window pixels, not only rendered ones), or None without a mask head.
    """

    field: torch.Tensor
    weight: torch.Tensor
    weight_logits: torch.Tensor | None = None
    visible_logits: torch.Tensor | None = None


def _conv_norm(c_in: int, c_out: int, norm: str, k: int = 3, stride: int = 1, dilation: int = 1):
    """conv k x k (same padding) + norm, (B, c_in, H, W) -> (B, c_out, H/stride, W/stride)."""
    pad = dilation * (k // 2)
    conv = nn.Conv2d(c_in, c_out, k, stride, pad, dilation, bias=norm == "none")
    if norm == "none":
        return conv
    layer = nn.BatchNorm2d(c_out) if norm == "batch" else nn.GroupNorm(_GROUPS, c_out)
    return nn.Sequential(conv, layer)


def _zero_last(block: nn.Module) -> None:
    """Make a residual branch start as zero (its block starts as the shortcut)."""
    last = block[-1] if isinstance(block, nn.Sequential) else block
    nn.init.zeros_(last.weight)


class _ResBlock(nn.Module):
    """conv3x3(stride)-norm-ReLU-conv3x3-norm + shortcut, ReLU.

    (B, c_in, H, W) -> (B, c_out, H / stride, W / stride).
    """

    def __init__(self, c_in: int, c_out: int, norm: str, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = _conv_norm(c_in, c_out, norm, stride=stride)
        self.conv2 = _conv_norm(c_out, c_out, norm, dilation=dilation)
        _zero_last(self.conv2)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = _conv_norm(c_in, c_out, norm, k=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x), inplace=True))
        return F.relu(y + self.shortcut(x), inplace=True)


class _Encoder(nn.Module):
    """(B, C, S, S) -> features at scales 1, 1/2, 1/4, 1/8 with ``widths`` channels."""

    def __init__(self, c_in: int, widths: tuple[int, ...], norm: str) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_norm(c_in, widths[0], norm), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList(
            _ResBlock(a, b, norm, stride=2) for a, b in itertools.pairwise(widths)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


class _UpBlock(nn.Module):
    """Project the coarse features (1x1), upsample x2, add the skip, ReLU, then (optionally) a
    conv3x3-norm-ReLU: (B, c_low, h, w), (B, c, 2h, 2w) -> (B, c, 2h, 2w)."""

    def __init__(self, c_low: int, c: int, norm: str, conv: bool = True) -> None:
        super().__init__()
        self.project = nn.Conv2d(c_low, c, 1)
        self.conv = nn.Identity()
        if conv:
            self.conv = nn.Sequential(_conv_norm(c, c, norm), nn.ReLU(inplace=True))

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.project(low), size=skip.shape[-2:], mode="bilinear")
        return self.conv(F.relu(up + skip, inplace=True))


class _CostVolume(nn.Module):
    """Local correlation of rendering features with image features.

    (B, c, h, w) render, (B, c, h, w) image -> (B, (2r + 1)², h, w): for each offset d with
    |d|_inf <= r, <P_r f_render(p), P_i f_image(p + d)> / sqrt(c), P_* learned 1x1 projections
    (signed features); zero outside the window. Offsets are row-major over (dv, du).
    """

    def __init__(self, c: int, radius: int) -> None:
        super().__init__()
        self.radius = radius
        self.project_render = nn.Conv2d(c, c, 1)
        self.project_image = nn.Conv2d(c, c, 1)

    def forward(self, render: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        r, (_, c, h, w) = self.radius, render.shape
        fr = self.project_render(render)
        fi = F.pad(self.project_image(image), (r, r, r, r))
        # One product per offset: on CPU ~20x faster than unfold + einsum (no (c, k², h, w) copy).
        corr = torch.stack(
            [
                (fr * fi[:, :, dv : dv + h, du : du + w]).sum(1)
                for dv in range(2 * r + 1)
                for du in range(2 * r + 1)
            ],
            dim=1,
        )
        return (corr / c**0.5).contiguous(memory_format=torch.channels_last)


class GcfNet(nn.Module):
    """Predicts the geometric correspondence field (and its confidence) of a rendering.

    Parameters and activations are kept channels-last (faster convolutions on CPU).
    """

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or NetConfig()
        w, norm, cells = config.widths, config.norm, config.input_stride**2
        self.image_encoder = _Encoder(config.image_channels * cells, w, norm)
        self.render_encoder = _Encoder(config.render_channels * cells, w, norm)
        corr = [config.corr_radius > 0 and i in config.corr_scales for i in range(len(w))]
        self.corr = nn.ModuleList(
            _CostVolume(c, config.corr_radius) if on else nn.Identity()
            for c, on in zip(w, corr, strict=True)
        )
        extra = (2 * config.corr_radius + 1) ** 2
        self.fuse = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * c + (extra if on else 0), c, 1), nn.ReLU(inplace=True))
            for c, on in zip(w, corr, strict=True)
        )
        self.context = nn.Sequential(
            _ResBlock(w[3], w[3], norm), _ResBlock(w[3], w[3], norm, dilation=2)
        )
        # 1/8 -> 1/4 -> 1/2 with a 3x3 conv each; the full-resolution step only adds the skip.
        self.up = nn.ModuleList(_UpBlock(w[i + 1], w[i], norm, conv=i > 0) for i in (2, 1, 0))
        self.field_head = nn.Conv2d(w[0], 2, 3, padding=1)
        self.weight_head = nn.Conv2d(w[0], 1, 3, padding=1) if config.weight_head else None
        self.mask_head = (
            nn.Sequential(
                nn.Conv2d(w[0], 16, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(16, 16, 3, padding=2, dilation=2), nn.ReLU(inplace=True),
                nn.Conv2d(16, 1, 3, padding=1),
            )
            if config.mask_head else None
        )  # fmt: skip
        nn.init.zeros_(self.field_head.weight)  # start from the "no correction" field
        nn.init.zeros_(self.field_head.bias)
        self.to(memory_format=torch.channels_last)

    def forward(self, image: torch.Tensor, render: torch.Tensor) -> GcfOutput:
        """image (B, 3, S, S) float in [0, 1]; render (B, 10, S, S) from ``render_input``.

        S must be a multiple of ``config.size_multiple`` (8, or 16 with input_stride 2). Returns a
        ``GcfOutput`` with the field in window pixels.
        """
        self._check_inputs(image, render)
        image, render = network_inputs(image, render, self.config.input_stride)
        pairs = zip(self.image_encoder(image), self.render_encoder(render), strict=True)
        fused = []
        for fuse, corr, (img, ren) in zip(self.fuse, self.corr, pairs, strict=True):
            parts = [img, ren, corr(ren, img)] if isinstance(corr, _CostVolume) else [img, ren]
            fused.append(fuse(torch.cat(parts, dim=1)))
        x = self.context(fused[3])
        for up, skip in zip(self.up, reversed(fused[:3]), strict=True):
            x = up(x, skip)
        stride = self.config.input_stride
        field = to_window(self.field_head(x) * self.config.field_scale, stride)
        visible = to_window(self.mask_head(x), stride) if self.mask_head is not None else None
        if self.weight_head is None:
            return GcfOutput(field, torch.ones_like(field[:, :1]), None, visible)
        logits = to_window(self.weight_head(x), stride)
        return GcfOutput(field, torch.sigmoid(logits), logits, visible)

    def _check_inputs(self, image: torch.Tensor, render: torch.Tensor) -> None:
        c = self.config
        if image.ndim != 4 or image.shape[1] != c.image_channels:
            raise ValueError(
                f"image must be (B, {c.image_channels}, S, S), got {tuple(image.shape)}"
            )
        expected = (image.shape[0], c.render_channels, *image.shape[2:])
        if tuple(render.shape) != expected:
            raise ValueError(f"render must be {expected}, got {tuple(render.shape)}")
        m = c.size_multiple
        if image.shape[2] % m or image.shape[3] % m:
            raise ValueError(f"window size must be a multiple of {m}, got {tuple(image.shape[2:])}")


def network_inputs(
    image: torch.Tensor, render: torch.Tensor, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoders' inputs: the image normalised, both pixel-unshuffled by ``stride`` ((B, C, S,
    S) -> (B, C stride², S / stride, S / stride)), channels-last."""
    image = (image - _IMAGE_MEAN) / _IMAGE_STD
    if stride > 1:
        image, render = F.pixel_unshuffle(image, stride), F.pixel_unshuffle(render, stride)
    cl = torch.channels_last
    return image.contiguous(memory_format=cl), render.contiguous(memory_format=cl)


def to_window(x: torch.Tensor, stride: int) -> torch.Tensor:
    """A head's output (B, C, S / stride, S / stride) at the window's S x S pixels (bilinear),
    contiguous."""
    if stride > 1:
        x = F.interpolate(x, scale_factor=stride, mode="bilinear", align_corners=False)
    return x.contiguous()


def grow_state_dict(old: dict[str, torch.Tensor], net: GcfNet) -> tuple[dict, list[str]]:
    """A state dict for ``net`` from one of a network without (or with fewer) cost volumes.

    Tensors of equal shape are copied; a fuse convolution that now also reads cost-volume channels
    keeps its old input weights and gets zeros for the new ones (so the grown network computes
    exactly what the old one did until training moves them); parameters that did not exist (the
    cost-volume projections) keep ``net``'s initialisation. Returns (state dict, grown keys).
    """
    new = net.state_dict()
    grown = []
    for key, target in new.items():
        if key not in old:
            grown.append(key)
            continue
        src = old[key]
        if src.shape == target.shape:
            new[key] = src.clone()
        elif key.startswith("fuse.") and key.endswith(".weight") and src.shape[1] < target.shape[1]:
            w = torch.zeros_like(target)
            w[:, : src.shape[1]] = src
            new[key] = w
            grown.append(key)
        else:
            raise ValueError(f"cannot grow {key}: {tuple(src.shape)} -> {tuple(target.shape)}")
    return new, grown


def stride_state_dict(
    old: dict[str, torch.Tensor], old_config: NetConfig, net: GcfNet
) -> tuple[dict, list[str]]:
    """A state dict for ``net`` (``input_stride`` s > 1) from the weights of a network that is the
    same but for ``input_stride`` 1 and a field_scale s times smaller: with it, ``net`` computes
    the old network on the window averaged over s x s pixel blocks (each stem convolution reads
    the s² pixel-unshuffled copies of its old input channel with 1 / s² of its weight), with the
    field in the new window's pixels. The S = 64 network, so converted, starts a faster S = 128
    one (``NetConfig.input_stride``) at what it computes on a 2 x 2 downsampled window. Returns
    (state dict, strided keys), as ``grow_state_dict`` does."""
    s, cfg = net.config.input_stride, net.config
    expected = dataclasses.replace(cfg, input_stride=1, field_scale=cfg.field_scale / s)
    if old_config.input_stride != 1 or old_config != expected:
        raise ValueError(f"cannot stride {old_config} into {cfg}: only input_stride and "
                         f"field_scale (x {s}) may differ")  # fmt: skip
    new, strided = net.state_dict(), []
    for key, target in new.items():
        src = old[key]
        if src.shape == target.shape:
            new[key] = src.clone()
        elif ".stem." in key and target.ndim == 4 and target.shape[1] == src.shape[1] * s * s:
            new[key] = src.repeat_interleave(s * s, dim=1) / (s * s)  # F.pixel_unshuffle order
            strided.append(key)
        else:
            raise ValueError(f"cannot stride {key}: {tuple(src.shape)} -> {tuple(target.shape)}")
    return new, strided


def save_gcf_weights(path: str | Path, net: GcfNet, meta: dict) -> None:
    """Write the weights-only file {"state_dict", "net_config", "meta"} (``meta``: plain values)."""
    _check_plain(meta, "meta")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": state, "net_config": net.config.to_dict(), "meta": dict(meta)}
    torch.save(payload, path)


def load_gcf_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[GcfNet, dict]:
    """Load a weights file written by ``save_gcf_weights``: (GcfNet in eval mode, meta dict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GCF weights file not found: {path}")
    payload = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(payload, dict) or any(k not in payload for k in WEIGHTS_KEYS):
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} is not a GCF weights file: expected keys {WEIGHTS_KEYS}, {found=}"
        )
    net = GcfNet(NetConfig.from_dict(payload["net_config"]))
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not match its net_config: {err}") from err
    return net.to(device).eval(), dict(payload["meta"])


def _check_plain(value, where: str) -> None:
    """TypeError unless ``value`` holds only str/int/float/bool/None, lists, str-keyed dicts.

    Exact types: subclasses (numpy scalars, ``torch.__version__``) do not load with weights_only.
    """
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"{where}: key {k!r} is not a str")
            _check_plain(v, f"{where}.{k}")
    elif type(value) in (list, tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif type(value) not in (str, int, float, bool, type(None)):
        raise TypeError(f"{where}: {type(value).__name__} is not a plain value")
