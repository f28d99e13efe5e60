"""Which colour model finds the contour along the region term's lines? Measured against the
rendered ground-truth visible masks of LM-O frames 1-50 (the validation frames: settings may be
chosen on them, nothing is trained).

    python experiments/region_colour_study.py [--frames 1-50] [--max-instances 200] [--json OUT]

For every instance (medium noise, seed 0: the initial poses of ``gcf-eval``), the model is rendered
at its initial pose into the refiner's window, the region term's correspondence lines are drawn
from that rendering (``contour_lines``, ``line_samples`` at the steps of iterations 0 and 3), and
each colour model gives every sample a foreground probability. The same lines read on the
ground-truth visible mask (every annotated object at its true pose; LM-O's unannotated clutter is
not in it) give the reference contour position per line. Reported per model: the median
|mu - mu_ref| over lines the reference can place, the fraction within one sample step, that
fraction with the lines weighted as the solver weighs them (informativeness / variance), and the
per-pixel AUROC of p_f against the visible mask within the lines' reach.

Colour models (``RegionConfig`` of the shipped term = ``global``):
- ``global``: one foreground and one background histogram per window (the shipped term);
- ``local R``: RBOT-style local histograms: discs of radius R window px centred on every
  ``stride``-th contour point, each with its own foreground / background counts plus the global
  ones as a prior (``prior_weight`` x their normalised shape); a line reads the disc nearest
  its contour point;
- ``gt-stat``: the global histograms taken from the ground-truth mask (the best a per-window
  colour model could do; a bound, not a method).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.camera import crop_window_for_box
from gcf_ros.core.render.raycast import RaycastRenderer
from gcf_ros.core.visibility import render_scene_masks
from gcf_ros.eval.cli import frame_range
from gcf_ros.eval.confidence import auroc
from gcf_ros.eval.harness import EvalConfig, select_instances
from gcf_ros.gcf.terms.silhouette import (
    LineConfig,
    RegionConfig,
    _bin_index,
    _histogram,
    _window_inside_image,
    colour_regions,
    contour_lines,
    line_posterior,
    line_samples,
    sample_image,
)

S, PADDING = 128, 1.3


class Regions:
    """Foreground / background pixel sets of a window, from a mask (S, S) bool."""

    def __init__(self, crop, mask, inside, rc: RegionConfig) -> None:
        self.fg, self.bg = colour_regions(mask, inside, rc)
        self.crop, self.rc = crop, rc
        self.shift = 8 - int(np.log2(rc.bins))

    def hists(self, where=None):
        fg, bg = (self.fg, self.bg) if where is None else (self.fg & where, self.bg & where)
        hf = _histogram(self.crop[fg], self.shift, self.rc.bins)
        hb = _histogram(self.crop[bg], self.shift, self.rc.bins)
        return hf, hb


def global_model(reg: Regions, colours, lines) -> np.ndarray:
    hf, hb = reg.hists()
    hf, hb = hf + reg.rc.prior, hb + reg.rc.prior
    post = (hf / hf.sum()) / (hf / hf.sum() + hb / hb.sum())
    return post[_bin_index(colours, reg.shift, reg.rc.bins)]


def local_model(reg: Regions, colours, lines, radius, stride, prior_weight) -> np.ndarray:
    gf, gb = reg.hists()
    gf, gb = gf / max(gf.sum(), 1), gb / max(gb.sum(), 1)
    centres = lines.centres[::stride]
    yy, xx = np.mgrid[0:S, 0:S]
    posts = []
    for c in centres:
        disc = (xx + 0.5 - c[0]) ** 2 + (yy + 0.5 - c[1]) ** 2 <= radius**2
        hf, hb = reg.hists(disc)
        hf = hf + prior_weight * gf + reg.rc.prior / len(gf)
        hb = hb + prior_weight * gb + reg.rc.prior / len(gb)
        posts.append((hf / hf.sum()) / (hf / hf.sum() + hb / hb.sum()))
    posts = np.stack(posts)  # (M, bins^3)
    nearest = np.argmin(((lines.centres[:, None] - centres[None]) ** 2).sum(-1), 1)
    idx = _bin_index(colours, reg.shift, reg.rc.bins)  # (n, 2K)
    return posts[nearest[:, None], idx]


def em_model(reg: Regions, colours, lines, mask, inside, sigma, rounds, margin) -> np.ndarray:
    """Histograms re-estimated from soft pixel posteriors (GrabCut-like EM without the graph
    cut): the prior of a pixel being the object is the rendered mask blurred by sigma px."""
    rc = reg.rc
    fg0, bg0 = colour_regions(mask, inside, replace(rc, inner_px=margin))
    silhouette, outside = colour_regions(mask, inside, replace(rc, inner_px=0))
    region = silhouette | outside  # the whole band within the image, the silhouette included
    idx_all = _bin_index(reg.crop, reg.shift, rc.bins)
    nb = rc.bins**3
    hf = np.bincount(idx_all[fg0], minlength=nb) + rc.prior
    hb = np.bincount(idx_all[bg0], minlength=nb) + rc.prior
    prior = np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma), 0.02, 0.98)
    for _ in range(rounds):
        pf, pb = hf / hf.sum(), hb / hb.sum()
        lf, lb = prior * pf[idx_all], (1 - prior) * pb[idx_all]
        P = lf / (lf + lb)
        hf = np.bincount(idx_all[region], weights=P[region], minlength=nb) + rc.prior
        hb = np.bincount(idx_all[region], weights=1 - P[region], minlength=nb) + rc.prior
    post = (hf / hf.sum()) / (hf / hf.sum() + hb / hb.sum())
    return post[_bin_index(colours, reg.shift, rc.bins)]


def field_mask(field, weight, tau, close_px) -> np.ndarray:
    """(S, S) bool: where the network puts the rendered pixels it trusts (the fraction 1 - tau
    of highest weight), each splatted to the nearest window pixel at p + F_p, closed by a
    (2 close_px + 1) square."""
    rendered = weight > 0
    if rendered.sum() == 0:
        return np.zeros((S, S), bool)
    rows, cols = np.nonzero(rendered & (weight >= np.quantile(weight[rendered], tau)))
    u = np.rint(cols + field[rows, cols, 0]).astype(int)
    v = np.rint(rows + field[rows, cols, 1]).astype(int)
    ok = (u >= 0) & (u < S) & (v >= 0) & (v < S)
    m = np.zeros((S, S), np.uint8)
    m[v[ok], u[ok]] = 1
    k = np.ones((2 * close_px + 1,) * 2, np.uint8)
    return cv2.morphologyEx(m, cv2.MORPH_CLOSE, k).astype(bool)


def grabcut_mask(crop, mask, inner_px, band_px, iters) -> np.ndarray:
    """(S, S) bool: OpenCV's GrabCut (colour GMMs + graph cut) started from the rendering:
    probably object inside it (surely, eroded by inner_px), probably background in the band
    around it, surely background beyond."""
    m8 = mask.astype(np.uint8)
    init = np.full(mask.shape, cv2.GC_BGD, np.uint8)
    band = cv2.dilate(m8, np.ones((2 * band_px + 1,) * 2, np.uint8)).astype(bool)
    init[band] = cv2.GC_PR_BGD
    init[mask] = cv2.GC_PR_FGD
    if inner_px > 0:
        core = cv2.erode(m8, np.ones((2 * inner_px + 1,) * 2, np.uint8)).astype(bool)
        init[core] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(
            np.ascontiguousarray(crop[..., ::-1]),
            init,
            None,
            bgd,
            fgd,
            iters,
            cv2.GC_INIT_WITH_MASK,
        )
    except cv2.error:
        return mask
    return (init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)


@dataclass
class Window:
    """One instance's window at its initial pose: what every colour model may look at."""

    crop: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) bool, the rendering at the initial pose
    inside: np.ndarray  # (S, S) bool, window pixels inside the image
    lines: object  # ContourLines of the rendering
    field: np.ndarray  # (S, S, 2) the shipped network's field there, window px
    weight: np.ndarray  # (S, S) its weights
    gt_visible: np.ndarray  # (S, S) bool, the visible mask at the true pose
    gt_full: np.ndarray  # (S, S) bool, the whole silhouette at the true pose
    rendered_rgb: np.ndarray  # (S, S, 3) uint8, the model's shaded vertex colours at T0
    cache: dict = field(default_factory=dict)

    def regions(self, silhouette: np.ndarray, rc: RegionConfig | None = None) -> Regions:
        return Regions(self.crop, silhouette, self.inside, rc or RegionConfig())


def model_colours(w: Window, colours, image_weight: float) -> np.ndarray:
    """The foreground histogram from the model's own (rendered, shaded) colours, plus
    ``image_weight`` x the image's over the eroded rendering (both normalised); the background
    histogram from the image's band as shipped."""
    reg = w.regions(w.mask)
    rc = reg.rc
    hf_img, hb = reg.hists()
    hf_model = _histogram(w.rendered_rgb[w.mask], reg.shift, rc.bins)
    hf = hf_model / max(hf_model.sum(), 1) + image_weight * hf_img / max(hf_img.sum(), 1)
    hf = hf / hf.sum() + rc.prior / hf_model.sum()
    hb = hb + rc.prior
    post = (hf / hf.sum()) / (hf / hf.sum() + hb / hb.sum())
    return post[_bin_index(colours, reg.shift, rc.bins)]


def _grabcut(w: Window, colours):
    if "grabcut" not in w.cache:  # once per window (the lines' step does not change it)
        w.cache["grabcut"] = grabcut_mask(w.crop, w.mask, 8, RegionConfig().band_px, 3)
    return global_model(w.regions(w.cache["grabcut"]), colours, w.lines)


CANDIDATES = {
    "global (shipped)": lambda w, c: global_model(w.regions(w.mask), c, w.lines),
    "global, 8 bins": lambda w, c: global_model(
        w.regions(w.mask, RegionConfig(bins=8)), c, w.lines
    ),
    "global, 32 bins": lambda w, c: global_model(
        w.regions(w.mask, RegionConfig(bins=32)), c, w.lines
    ),
    "global, margin 8 px": lambda w, c: global_model(
        w.regions(w.mask, RegionConfig(inner_px=8)), c, w.lines
    ),
    "local R 32 px": lambda w, c: local_model(w.regions(w.mask), c, w.lines, 32, 4, 100.0),
    "EM sigma 8 px, 3 rounds": lambda w, c: em_model(
        w.regions(w.mask), c, w.lines, w.mask, w.inside, 8.0, 3, 2
    ),
    "GrabCut": _grabcut,
    "model colours": lambda w, c: model_colours(w, c, 0.0),
    "model + image colours": lambda w, c: model_colours(w, c, 1.0),
    "field silhouette": lambda w, c: global_model(
        w.regions(field_mask(w.field, w.weight, 0.0, 1)), c, w.lines
    ),
    "field silhouette, top half": lambda w, c: global_model(
        w.regions(field_mask(w.field, w.weight, 0.5, 3)), c, w.lines
    ),
    "true pose, whole silhouette (bound)": lambda w, c: global_model(
        w.regions(w.gt_full), c, w.lines
    ),
    "true visible mask (bound)": lambda w, c: global_model(w.regions(w.gt_visible), c, w.lines),
}
ITERATIONS = (0, 3)  # the lines' steps of these iterations (4 and 2 px)


def _windows(args):
    """(Window, image, visible mask at the true pose (H, W) float32) per selected instance."""
    from gcf_ros.gcf.checkpoints import default_checkpoint
    from gcf_ros.gcf.predictor import NetworkPredictor

    dataset = BopDataset(args.dataset)
    registry = dataset.model_registry()
    selected = select_instances(dataset, registry, EvalConfig(args.dataset, args.noise, 0))
    selected = frame_range(selected, dataset, args.frames)[: args.max_instances]
    renderer = RaycastRenderer(nthreads=1)
    predictor = NetworkPredictor.from_weights(default_checkpoint())
    cached = None
    for frame, inst, _visib, T0 in selected:
        if cached is None or cached[0] != (frame.scene_id, frame.im_id):
            models = [registry.get(i.model_id) for i in frame.instances]
            T_all = np.stack([i.T_cam_obj for i in frame.instances])
            sm = render_scene_masks(models, T_all, frame.K, frame.width, frame.height)
            cached = ((frame.scene_id, frame.im_id), frame.load_rgb(), sm.visible, sm.full)
        _, image, visible, full = cached
        b = frame.instances.index(inst)
        model = registry.get(inst.model_id)
        window = crop_window_for_box(frame.K, T0, model.bbox_corners_obj, S, PADDING)
        K_win = torch.from_numpy(window.K_window(frame.K)[None])
        out = renderer.render([registry.render_model(inst.model_id)], torch.from_numpy(T0[None]),
                              K_win, S)  # fmt: skip
        mask = out.mask[0].numpy().astype(bool)
        lines = contour_lines(mask, out.xyz_obj[0].numpy(), LineConfig())
        if len(lines.centres) < 8:
            continue
        crop = window.resample(image)
        diameter = torch.tensor([model.diameter])
        fld, wgt = predictor.predict(torch.from_numpy(crop[None]), out, diameter, K_win, [0])
        vis = visible[b].astype(np.float32)
        yield (
            Window(crop, mask, _window_inside_image(window, image.shape), lines, fld[0].numpy(),
                   wgt[0].numpy(), window.resample(vis) > 0.5,
                   window.resample(full[b].astype(np.float32)) > 0.5,
                   (out.rgb[0].numpy() * 255).round().astype(np.uint8)),
            image, window, vis,
        )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=Path("../shared/data/lmo"))
    ap.add_argument("--frames", default="1-50")
    ap.add_argument("--noise", default="medium", help="the initial poses' noise level")
    ap.add_argument("--max-instances", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    lc = LineConfig()
    stats = {(name, it): defaultdict(list) for name in CANDIDATES for it in ITERATIONS}
    count = 0
    for w, image, window, vis in _windows(args):
        count += 1
        for it in ITERATIONS:
            step = lc.step(it)
            uv = line_samples(w.lines, lc.samples, step)
            colours, valid = sample_image(image, window, uv)
            colours = colours.astype(np.uint8)
            p_ref, _ = sample_image(vis, window, uv)
            p_ref[~valid] = 0.0
            mu_ref, _, inf_ref = line_posterior(np.clip(p_ref, 0.05, 0.95), step, lc.min_sigma_px)
            placed = inf_ref > 0.5  # lines the reference can place
            for name, model in CANDIDATES.items():
                p = np.where(valid, model(w, colours), 0.5)
                mu, var, inf = line_posterior(np.clip(p, 0.05, 0.95), step, lc.min_sigma_px)
                st = stats[(name, it)]
                st["err"].append(np.abs(mu - mu_ref)[placed] / step)
                st["w"].append((inf / var)[placed])
                st["score"].append(p[valid].ravel())
                st["label"].append(p_ref[valid].ravel() > 0.5)
    print(f"{count} instances, frames {args.frames}, {args.noise} noise")
    print("| colour model | iteration | lines | median error (steps) | within 1 step |"
          " weighted within 1 step | pixel AUROC |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    results = {}
    for (name, it), st in stats.items():
        err, w = np.concatenate(st["err"]), np.concatenate(st["w"])
        auc = auroc(np.concatenate(st["score"]), np.concatenate(st["label"]))
        within = err < 1
        row = {"lines": len(err), "median_err_steps": float(np.median(err)),
               "within_1": float(within.mean()),
               "weighted_within_1": float((w * within).sum() / w.sum()), "auroc": auc}  # fmt: skip
        results[f"{name} @ {it}"] = row
        print(f"| {name} | {it} | {row['lines']} | {row['median_err_steps']:.2f} | "
              f"{row['within_1']:.3f} | {row['weighted_within_1']:.3f} | {auc:.3f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
