"""The correspondence network alone, per inference backend: ms per call and difference to the
trained module, measured interleaved in one process (the machine is shared: compare ratios).

    python experiments/network_backends.py [--compile] [--out out/network_backends.json]
    python experiments/network_backends.py --also runs/fast/gcf_lmo_fast.pt   # another network

``--also WEIGHTS`` adds that network, fused, as a candidate of its own (another function: its
differences are not computed), e.g. the input_stride-2 network against the shipped one.

Candidates: "eager" (GcfNet as trained, channels-last), "fused" (gcf_ros/gcf/inference.py), ONNX
Runtime fp32 on the fused export, ONNX Runtime int8 (static QDQ quantisation of that export,
calibrated on random inputs: a speed probe only, its accuracy is not what a real calibration
would give), bf16 autocast of the trained module (this CPU has no bf16 instructions), and with
--compile torch.compile (inductor, freezing; minutes of warm-up on 2 cores). One torch thread and
one ONNX Runtime thread.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gcf_ros.gcf.checkpoints import default_checkpoint
from gcf_ros.gcf.inference import FusedGcfNet, OnnxRuntimeNet, _export_onnx
from gcf_ros.gcf.network import load_gcf_weights


def _int8_session(fused: FusedGcfNet, size: int):
    """ONNX Runtime session of the int8 (QDQ, u8 activations / s8 weights) fused network."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Random(CalibrationDataReader):
        def __init__(self) -> None:
            g = np.random.default_rng(0)
            self.feeds = iter(
                {"image": g.random((1, 3, size, size), np.float32),
                 "render": g.random((1, 10, size, size), np.float32)}
                for _ in range(8)
            )  # fmt: skip

        def get_next(self):
            return next(self.feeds, None)

    tmp = Path(tempfile.mkdtemp())
    (tmp / "f.onnx").write_bytes(_export_onnx(fused))
    quant_pre_process(str(tmp / "f.onnx"), str(tmp / "p.onnx"))
    quantize_static(
        str(tmp / "p.onnx"), str(tmp / "q.onnx"), Random(), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(tmp / "q.onnx"), options, providers=["CPUExecutionProvider"])

    def run(image, render):
        out = session.run(None, {"image": image.numpy(), "render": render.numpy()})
        return torch.from_numpy(out[0]), torch.sigmoid(torch.from_numpy(out[1]))

    return run


def _pair(out):
    return (out.field, out.weight) if hasattr(out, "field") else out


def _measure(candidates: dict, net, others: set, size: int, batch: int, repeats: int) -> list:
    """Rows of ms per call (median) and differences to ``net`` for one window size and batch,
    the candidates interleaved; ``others``: candidates that are other networks (no difference)."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=g)
    render = torch.rand(batch, 10, size, size, generator=g)
    times = {k: [] for k in candidates}
    with torch.inference_mode():
        ref_field, ref_weight = _pair(net(image, render))
        diffs, warm = {}, {}
        for name, run in candidates.items():
            t = time.perf_counter()
            field, weight = run(image, render)
            warm[name] = time.perf_counter() - t
            diffs[name] = (float((field - ref_field).abs().max()),
                           float((weight - ref_weight).abs().max()))  # fmt: skip
            if name in others:  # another network: no difference to speak of
                diffs[name] = (float("nan"), float("nan"))
            run(image, render)
        for _ in range(repeats):  # interleaved: the same load for every candidate
            for name, run in candidates.items():
                t = time.perf_counter()
                run(image, render)
                times[name].append(time.perf_counter() - t)
    eager = np.median(times["eager"])
    rows = []
    for name in candidates:
        median = float(np.median(times[name]))
        rows.append({
            "size": size, "batch": batch, "candidate": name, "ms": 1e3 * median,
            "speedup_vs_eager": float(eager / median), "max_field_diff_px": diffs[name][0],
            "max_weight_diff": diffs[name][1], "first_call_s": warm[name],
        })  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 64])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--compile", action="store_true", help="also torch.compile (slow warm-up)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--also", type=Path, nargs="*", default=[], help="other networks (fused)")
    args = p.parse_args()
    torch.set_num_threads(1)
    net, _ = load_gcf_weights(args.weights or default_checkpoint())
    fused = FusedGcfNet(net)
    ort_fp32 = OnnxRuntimeNet(net, threads=1)
    others = {f"fused {w.name}": FusedGcfNet(load_gcf_weights(w)[0]) for w in args.also}

    rows = []
    for size in args.sizes:
        int8 = _int8_session(fused, size)
        candidates = {
            "eager": lambda i, r: _pair(net(i, r)),
            "fused": lambda i, r: _pair(fused(i, r)),
            "onnxruntime fp32": lambda i, r: _pair(ort_fp32(i, r)),
            "onnxruntime int8 (speed probe)": int8,
        }

        def bf16(i, r):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = net(i, r)
            return out.field.float(), out.weight.float()

        candidates["eager bf16 autocast"] = bf16
        for name, other in others.items():
            candidates[name] = lambda i, r, o=other: _pair(o(i, r))
        if args.compile:
            import torch._inductor.config as inductor

            inductor.freezing = True
            compiled = torch.compile(fused, dynamic=False)
            candidates["fused torch.compile"] = lambda i, r, c=compiled: _pair(c(i, r))
        for batch in args.batches:
            rows += _measure(candidates, net, set(others), size, batch, args.repeats)
    print(f"{'S':>4} {'B':>3}  {'candidate':<32}{'ms/call':>9}{'x eager':>9}{'field diff px':>15}"
          f"{'weight diff':>13}{'first call s':>14}")  # fmt: skip
    for r in rows:
        print(f"{r['size']:>4} {r['batch']:>3}  {r['candidate']:<32}{r['ms']:>9.2f}"
              f"{r['speedup_vs_eager']:>9.2f}{r['max_field_diff_px']:>15.1e}"
              f"{r['max_weight_diff']:>13.1e}{r['first_call_s']:>14.2f}")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
