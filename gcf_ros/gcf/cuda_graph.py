"""Faster inference of the correspondence network on a GPU: CUDA graphs or ``torch.compile``.

At refinement sizes (1-64 windows of 64 px) the network is launch-bound on a GPU: about 9 ms
whatever the batch, eager (docs/performance.md, "On a GPU"). Two wrappers remove the per-kernel
launch cost; both take the network module and the static shapes it will see, and are called like
it: ``wrapped(image (B, 3, S, S), render (B, 10, S, S)) -> GcfOutput`` (float32, on the net's
device), inference only (they run under ``torch.inference_mode``).

- :class:`CudaGraphNet`: one CUDA graph per batch bucket, captured on first use (a few eager warm-up
  runs, then the capture); a call copies its inputs into the bucket's static buffers, zero-pads
  the batch up to the bucket, replays the graph and returns copies of the first B rows. With
  ``capture=False`` (what a CPU gets) the same buffer path runs eagerly: that is how the padding
  and slicing are tested without a GPU.
- :class:`CompiledNet`: ``torch.compile`` (default mode ``reduce-overhead``, which adds CUDA
  graphs on a GPU), the batch padded to the same buckets so each bucket compiles once.

Padding rows change nothing in the real rows: every layer of ``GcfNet`` is per-sample in eval mode
(BatchNorm uses its running statistics; GroupNorm and the cost volume are per-sample).
``accelerate(net, wrapper, ...)`` picks one by name (``WRAPPERS``); ``warm_up`` triggers every
bucket's capture / compilation and reports how long each took (the price paid once per process).

``gcf_ros.gcf.inference.make_backend`` wraps the fused network (``FusedGcfNet``: far fewer
kernels than ``GcfNet``) with these for its backends "cuda_graph" and "compile".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from gcf_ros.gcf.inputs import IMAGE_CHANNELS, RENDER_CHANNELS

WRAPPERS = ("eager", "cuda_graph", "compile")
DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def bucket_for(batch: int, buckets: Sequence[int]) -> int | None:
    """The smallest bucket >= ``batch`` (None when the batch exceeds every bucket)."""
    fitting = [b for b in buckets if b >= batch]
    return min(fitting) if fitting else None


def _net_device(net: nn.Module) -> torch.device:
    param = next(iter(net.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def _rows(out, batch: int):
    """A copy of the first ``batch`` rows of every tensor field of a ``GcfOutput``-like
    dataclass (the static outputs are overwritten by the next replay)."""
    values = {
        f.name: (v[:batch].clone() if isinstance(v, torch.Tensor) else v)
        for f in dataclasses.fields(out)
        for v in (getattr(out, f.name),)
    }
    return type(out)(**values)


class _Bucketed(nn.Module):
    """Shared part: checks, padding to buckets, the eager fallback, counters.

    Attributes:
        net: the wrapped network (eval mode).
        window_size: S of the static inputs.
        buckets: the static batch sizes, ascending.
        calls: how many calls went through a bucket (``static``) or fell back to the eager net
            (``eager``: a batch beyond the largest bucket, another window size).
    """

    def __init__(self, net: nn.Module, window_size: int, buckets: Sequence[int]) -> None:
        super().__init__()
        if window_size < 8 or window_size % 8:
            raise ValueError(f"window_size must be a positive multiple of 8, got {window_size}")
        if not buckets or min(buckets) < 1:
            raise ValueError(f"buckets must be positive batch sizes, got {buckets}")
        self.net = net.eval()
        self.window_size = int(window_size)
        self.buckets = tuple(sorted({int(b) for b in buckets}))
        self.calls = {"static": 0, "eager": 0}

    @property
    def device(self) -> torch.device:
        return _net_device(self.net)

    def forward(self, image: torch.Tensor, render: torch.Tensor):
        n, S = image.shape[0], self.window_size
        bucket = bucket_for(n, self.buckets)
        static = (
            bucket is not None
            and tuple(image.shape[1:]) == (IMAGE_CHANNELS, S, S)
            and tuple(render.shape[1:]) == (RENDER_CHANNELS, S, S)
            and render.shape[0] == n
        )
        with torch.inference_mode():
            if not static:
                self.calls["eager"] += 1
                return self.net(image, render)
            self.calls["static"] += 1
            dev = self.device
            return self._run(bucket, image.to(dev, torch.float32), render.to(dev, torch.float32))

    def _run(self, bucket: int, image: torch.Tensor, render: torch.Tensor):
        raise NotImplementedError


class CudaGraphNet(_Bucketed):
    """CUDA graphs of ``net`` at the static shapes (bucket, 3, S, S) + (bucket, 10, S, S).

    Args:
        net: the network (its parameters on the device the graphs run on).
        window_size: S.
        buckets: batch sizes to capture (each on first use); larger batches run eagerly.
        capture: None: capture when the net is on a CUDA device; False: run the static-buffer path
            eagerly (CPU; tests); True: capture (needs CUDA).
        warmup_runs: eager runs on a side stream before each capture (cuDNN picks its kernels).
    """

    def __init__(
        self,
        net: nn.Module,
        window_size: int,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
        capture: bool | None = None,
        warmup_runs: int = 3,
    ) -> None:
        super().__init__(net, window_size, buckets)
        self.capture = self.device.type == "cuda" if capture is None else bool(capture)
        if self.capture and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need the net on a CUDA device, it is on {self.device}")
        self.warmup_runs = int(warmup_runs)
        self._static: dict[int, tuple] = {}  # bucket -> (image, render, output, graph or None)

    def _run(self, bucket: int, image: torch.Tensor, render: torch.Tensor):
        if bucket not in self._static:
            self._static[bucket] = self._build(bucket)
        s_image, s_render, s_out, graph = self._static[bucket]
        n = image.shape[0]
        s_image[:n].copy_(image)
        s_render[:n].copy_(render)
        if n < bucket:  # stale rows of an earlier, larger call: zeros, so outputs stay finite
            s_image[n:].zero_()
            s_render[n:].zero_()
        if graph is not None:
            graph.replay()
        else:
            s_out = self.net(s_image, s_render)
        return _rows(s_out, n)

    def _build(self, bucket: int) -> tuple:
        S, dev = self.window_size, self.device
        s_image = torch.zeros(bucket, IMAGE_CHANNELS, S, S, device=dev)
        s_render = torch.zeros(bucket, RENDER_CHANNELS, S, S, device=dev)
        if not self.capture:
            return s_image, s_render, None, None
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_runs):
                self.net(s_image, s_render)
        torch.cuda.current_stream(dev).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            s_out = self.net(s_image, s_render)
        return s_image, s_render, s_out, graph


class CompiledNet(_Bucketed):
    """``torch.compile(net, mode=mode, dynamic=False)`` with the batch padded to ``buckets``
    (one compilation per bucket, on first use).

    Args:
        mode: ``reduce-overhead`` (CUDA graphs on a GPU), ``max-autotune``, ``default``, ...
        compile_backend: torch.compile's backend (``inductor``; ``eager`` compiles nothing:
            tests).
    """

    def __init__(
        self,
        net: nn.Module,
        window_size: int,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
        mode: str | None = "reduce-overhead",
        compile_backend: str = "inductor",
    ) -> None:
        super().__init__(net, window_size, buckets)
        self.mode, self.compile_backend = mode, compile_backend
        mode = mode if compile_backend == "inductor" else None  # only inductor takes a mode
        self.compiled: Callable = torch.compile(
            self.net, mode=mode, dynamic=False, backend=compile_backend
        )

    def _run(self, bucket: int, image: torch.Tensor, render: torch.Tensor):
        n = image.shape[0]
        if n < bucket:
            image = torch.cat([image, image.new_zeros(bucket - n, *image.shape[1:])])
            render = torch.cat([render, render.new_zeros(bucket - n, *render.shape[1:])])
        if self.device.type == "cuda" and self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # the previous outputs were copied
        return _rows(self.compiled(image, render), n)


def accelerate(
    net: nn.Module,
    backend: str,
    window_size: int,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    **kwargs,
) -> nn.Module:
    """``net`` for inference with ``backend``: ``eager`` (itself, eval mode), ``cuda_graph``
    (:class:`CudaGraphNet`) or ``compile`` (:class:`CompiledNet`); ``kwargs`` go to the
    wrapper."""
    if backend not in WRAPPERS:
        raise ValueError(f"backend must be one of {WRAPPERS}, got {backend!r}")
    if backend == "eager":
        return net.eval()
    if backend == "cuda_graph":
        return CudaGraphNet(net, window_size, buckets, **kwargs)
    return CompiledNet(net, window_size, buckets, **kwargs)


def warm_up(
    net: nn.Module, buckets: Sequence[int] | None = None, calls: int = 3
) -> dict[int, float]:
    """Call an accelerated net ``calls`` times per bucket (``buckets``: None, all of its own) so
    that capture / compilation happen now, not on the first frames (``reduce-overhead`` records
    its graphs on the second or third call); returns the seconds those calls took per bucket (an
    eager net: {})."""
    if not isinstance(net, _Bucketed):
        return {}
    S, dev = net.window_size, net.device
    seconds = {}
    for b in buckets or net.buckets:
        image = torch.zeros(b, IMAGE_CHANNELS, S, S, device=dev)
        render = torch.zeros(b, RENDER_CHANNELS, S, S, device=dev)
        start = time.perf_counter()
        for _ in range(calls):
            net(image, render)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds[b] = time.perf_counter() - start
    return seconds
