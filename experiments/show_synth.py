#!/usr/bin/env python3
"""Visual check of synthetic training samples: one row per sample.

    python experiments/show_synth.py data/synthetic/train --out out/synth_check.png [--start 0]

Columns: the image window (T*), the rendering at T0 (shaded rgb channels of the network input),
the true field as an HSV flow image (hue: direction, value: length, normalised per row), and the
image with the T0 mask outline (green) and field arrows from rendered pixels p to p + F_p (yellow).
test/train/test_synth.py checks the same numerically (the field is the exact warp of the rendered
points).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from gcf_ros.train.shards import ShardBatch, ShardDataset

TILE = 256


def flow_to_rgb(field: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2, S, S) field, (S, S) mask -> (S, S, 3) uint8 RGB: hue = direction, value = length."""
    u, v = field.astype(np.float32)
    magnitude, angle = cv2.cartToPolar(u, v, angleInDegrees=True)
    scale = max(float(magnitude[mask].max()) if mask.any() else 0.0, 1e-6)
    hsv = np.zeros((*u.shape, 3), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8) * mask
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _up(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_NEAREST)


def arrows(image: np.ndarray, field: np.ndarray, mask: np.ndarray, step: int = 8) -> np.ndarray:
    """The image upscaled to TILE with the mask outline and sparse field arrows."""
    S = mask.shape[0]
    k = TILE / S
    out = np.ascontiguousarray(_up(image))
    contours, _ = cv2.findContours(_up(mask.astype(np.uint8)), cv2.RETR_EXTERNAL, 1)
    cv2.drawContours(out, contours, -1, (0, 255, 0), 1)
    for r in range(step // 2, S, step):
        for c in range(step // 2, S, step):
            if mask[r, c]:
                p = (round((c + 0.5) * k), round((r + 0.5) * k))
                q = (round((c + 0.5 + float(field[0, r, c])) * k),
                     round((r + 0.5 + float(field[1, r, c])) * k))  # fmt: skip
                cv2.arrowedLine(out, p, q, (255, 230, 0), 1, cv2.LINE_AA, tipLength=0.2)
    return out


def row(ds: ShardDataset, b: ShardBatch, k: int, i: int) -> np.ndarray:
    """One row of four tiles for sample k of batch b (sample i of ds), with its model id and noise
    level written on it."""
    image = (b.image[k].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    render, field, mask = b.render[k].numpy(), b.field[k].numpy(), b.mask[k].numpy()
    rgb = (np.clip(render[6:9].transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
    tiles = [_up(image), _up(rgb), _up(flow_to_rgb(field, mask)), arrows(image, field, mask)]
    out = np.concatenate(tiles, axis=1)
    name = ds.model_ids[int(b.model_idx[k])]
    level = ds.level_names[int(b.level[k])] if b.level is not None else "?"
    label = f"{i}: {name} level {level} |F|max {np.abs(field).max():.1f}px"
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shards", type=Path, help="a folder of shards written by gcf-synth")
    parser.add_argument("--out", type=Path, default=Path("synth.png"), help="output PNG")
    parser.add_argument("--num", type=int, default=8, help="number of samples (rows)")
    parser.add_argument("--start", type=int, default=0, help="first sample")
    args = parser.parse_args(argv)
    ds = ShardDataset(args.shards, max_samples=args.start + args.num)
    indices = np.arange(args.start, len(ds))
    b = ds.batch(indices)
    rows = [row(ds, b, k, int(i)) for k, i in enumerate(indices)]
    grid = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({len(rows)} samples of {args.shards})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
