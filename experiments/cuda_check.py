"""CUDA check of the training loop and the network: what runs on a GPU machine, with timings.

    python experiments/cuda_check.py --train DIR --val DIR [--diameters JSON] [--iterations 300]

1. Parity: the same network and batch give the same loss (field + pose loss) and gradients on
   CUDA as on the CPU.
2. Learning: ``--iterations`` steps on one fixed batch on CUDA must cut its loss by a third.
3. Times ``--iterations`` steps of the stage-3 configuration (config/train_corr.yaml: cost
   volumes, pose loss) on the shards in --train with ``device="cuda"`` (validated on --val) against
   5 steps on one CPU thread.
4. Times the network's inference for 1, 8 and 32 windows of 64 x 64 on CUDA and on one CPU thread.

Model diameters come from --diameters (a JSON {model_id: metres}) where the model registry cannot
be loaded (no open3d), else from config/models.yaml. Needs no renderer: only torch, numpy, cv2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from gcf_ros.gcf.network import GcfNet
from gcf_ros.train.train import Trainer
from gcf_ros.train.train_cli import load_diameters, load_train_config


def _time(fn, sync, repeats: int, *args) -> float:
    for _ in range(3):
        fn(*args)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(*args)
    sync()
    return (time.perf_counter() - start) / repeats


def _parity_and_learning(trainer: Trainer, steps: int) -> tuple[bool, bool]:
    """Loss and gradients on CUDA vs CPU for one batch; then fit that batch on CUDA."""
    from gcf_ros.train.train import gcf_loss

    batch = trainer.train_set.batch(trainer.batch_indices(0))
    exact = dataclasses.replace(trainer.config, pose_loss_pixels=10**6)  # no random pixel subset
    net_cpu = GcfNet(trainer.config.net)
    net_cpu.load_state_dict({k: v.cpu() for k, v in trainer.net.state_dict().items()})
    results = []
    for net, device in ((net_cpu, "cpu"), (trainer.net, "cuda")):
        b = batch.to(device)
        net.train()
        diam = trainer.batch_diameters("train", b)
        loss, _ = gcf_loss(net(b.image, b.render), b, exact, diam)
        net.zero_grad()
        loss.backward()
        grad = torch.cat([p.grad.flatten().cpu() for p in net.parameters()])
        results.append((float(loss.detach()), grad))
    (l_cpu, g_cpu), (l_gpu, g_gpu) = results
    cos = float(torch.nn.functional.cosine_similarity(g_cpu, g_gpu, dim=0))
    parity = abs(l_cpu - l_gpu) <= 1e-3 * abs(l_cpu) and cos > 0.999
    print(f"parity: loss CPU {l_cpu:.5f} CUDA {l_gpu:.5f}, gradient cosine {cos:.6f}")
    opt = torch.optim.Adam(trainer.net.parameters(), lr=1e-3)
    b = batch.to("cuda")
    diam = trainer.batch_diameters("train", b)
    losses = []
    for _ in range(steps):
        loss, _ = gcf_loss(trainer.net(b.image, b.render), b, trainer.config, diam)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    learned = losses[-1] < (2 / 3) * losses[0]
    print(f"learning: one batch, {steps} CUDA steps: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return parity, learned


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--diameters", type=Path, default=None)
    p.add_argument("--config", type=Path, default=Path("config/train_corr.yaml"))
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--out", type=Path, default=Path("out/cuda_check"))
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("cuda_check: no CUDA device")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    if args.diameters:
        diameters = json.loads(args.diameters.read_text())
    else:
        diameters = load_diameters(args.config)
    config = dataclasses.replace(
        load_train_config(args.config), train_dir=str(args.train), val_dir=str(args.val),
        out_dir=str(args.out / "run"), export=str(args.out / "weights.pt"),
        iterations=args.iterations, val_every=args.iterations, ckpt_every=args.iterations,
        warmup_steps=20,
    )  # fmt: skip
    cuda = Trainer(config, ".", "cuda", diameters)
    parity, learned = _parity_and_learning(cuda, args.iterations)
    cuda = Trainer(config, ".", "cuda", diameters)
    first = cuda.validate()
    start = time.perf_counter()
    record = cuda.fit(progress=False)
    torch.cuda.synchronize()
    s_cuda = (time.perf_counter() - start) / args.iterations
    finite = all(torch.isfinite(p).all() for p in cuda.net.parameters())
    print(
        f"val pose score {first['val_pose_score']:.3f} -> {record['val_pose_score']:.3f}, "
        f"val EPE {first['val_epe']:.3f} -> {record['val_epe']:.3f}; parameters finite: {finite}"
    )
    cpu = Trainer(dataclasses.replace(config, out_dir=str(args.out / "cpu")), ".", "cpu", diameters)
    torch.set_num_threads(1)
    start = time.perf_counter()
    for _ in range(5):
        cpu.step()
    s_cpu = (time.perf_counter() - start) / 5
    print(f"| training step (batch {config.batch_size}) | CUDA s | CPU 1 thread s | ratio |")
    print("|---|---|---|---|")
    print(f"| stage-3 net + pose loss | {s_cuda:.4f} | {s_cpu:.3f} | {s_cpu / s_cuda:.1f}x |")
    net_gpu = GcfNet(config.net).cuda().eval()
    net_cpu = GcfNet(config.net).eval()
    print("| inference windows | CUDA ms | CPU 1 thread ms | ratio |")
    print("|---|---|---|---|")
    for b in (1, 8, 32):
        img, ren = torch.rand(b, 3, 64, 64), torch.randn(b, 10, 64, 64)
        ig, rg = img.cuda(), ren.cuda()
        with torch.inference_mode():
            t_gpu = _time(net_gpu, torch.cuda.synchronize, 50, ig, rg)
            t_cpu = _time(net_cpu, lambda: None, 5, img, ren)
        print(f"| {b} | {1e3 * t_gpu:.2f} | {1e3 * t_cpu:.1f} | {t_cpu / t_gpu:.0f}x |")
    ok = finite and parity and learned
    print("cuda_check:", "OK" if ok else "FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
