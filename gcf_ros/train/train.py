"""Training of the correspondence network on synthetic shards (docs/design.md §2, "Training data").

Loss on the rendering's foreground pixels: a Charbonnier end-point error sqrt(|F - F*|² + eps²)
averaged over all foreground pixels of the batch, plus ``weight_loss_factor`` x the BCE of the
weight head against w* = exp(-EPE / weight_tau_px) (EPE detached), plus ``pose_loss_factor`` x the
reprojection (px) and rotation (deg, x ``pose_loss_rotation``) errors left after one Gauss–Newton
step on the predicted field and weights (:mod:`gcf_ros.train.pose_loss`; needs the shards' poses
and the models' diameters). AdamW, linear warm-up then a cosine decay to zero, gradient clipping.
Batches are drawn without a sampler state: iteration k takes the (k mod n_b)-th batch of the
permutation of epoch k // n_b drawn from ``default_rng([seed, epoch])``, so a resumed run sees
exactly the batches an uninterrupted run does.

A non-finite loss, gradient norm or validation number stops the run with
:class:`~gcf_ros.train.guards.NonFiniteError` before the optimiser step (the checkpoints written
before it stay, nothing is exported), and :meth:`Trainer.export` refuses to write non-finite
weights or into the shipped weights folder (:mod:`gcf_ros.train.guards`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812
from tqdm import tqdm

from gcf_ros.gcf.network import (
    GcfNet,
    GcfOutput,
    NetConfig,
    grow_state_dict,
    load_gcf_weights,
    save_gcf_weights,
    stride_state_dict,
)
from gcf_ros.gcf.weights_meta import WeightsMeta
from gcf_ros.train.augment import augment_images
from gcf_ros.train.guards import (
    NonFiniteError,
    check_export_path,
    check_finite_record,
    check_finite_state,
    non_finite_counts,
)
from gcf_ros.train.pose_loss import one_step_error, saturate
from gcf_ros.train.shards import ShardBatch, ShardDataset

FIT_PROBE = 100  # steps timed before fit(fit_schedule=True) sets the schedule's end
FIT_RESERVE = 0.1  # share of the remaining time kept for validation and checkpoints
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "iteration", "best", "rng", "config")


@dataclass(frozen=True)
class TrainConfig:
    """The ``train:`` section of config/train.yaml. Relative paths are relative to the repo root."""

    train_dir: str = "data/synthetic/train"
    val_dir: str = "data/synthetic/val"
    out_dir: str = "runs/gcf_lmo"
    export: str = "runs/gcf_lmo/gcf_lmo.pt"  # never into weights/: see guards.check_export_path
    batch_size: int = 32
    iterations: int = 6000
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    grad_clip: float = 1.0
    val_every: int = 500
    ckpt_every: int = 500
    val_batch_size: int = 64
    val_max_samples: int | None = None
    seed: int = 0
    charbonnier_eps: float = 0.1
    weight_tau_px: float = 1.5
    weight_loss_factor: float = 0.1
    pose_loss_factor: float = 0.0  # 0: field loss only
    pose_loss_damping: float = 0.1  # LM lambda of the one-step solve (the refiner's default)
    pose_loss_cap_px: float = 20.0  # per-sample error saturates here (cap * tanh(e / cap))
    pose_loss_rotation: float = 1.0  # px of pose loss per degree of rotation error after the step
    pose_loss_pixels: int = 1024  # foreground pixels per sample in the training solve
    augment: bool = False  # on-the-fly photometric augmentation of the image branch (augment.py)
    # The visible-mask head (NetConfig.mask_head): BCE against the shards' "visible" masks over
    # every window pixel inside the image. 0: not trained.
    mask_loss_factor: float = 0.0
    # Module-name prefixes of the parameters that train (e.g. ["mask_head"]); the others are
    # frozen and kept in eval mode (their batch-norm statistics too). Empty: all train.
    trainable: tuple[str, ...] = ()
    # The export is init + init_blend * (trained - init) for a run started with --init (weight-
    # space ensembling, WiSE-FT: Wortsman et al., CVPR 2022): 1 = the trained network; 0.5 kept
    # the shipped models' accuracy on real LM-O frames where the full fine-tune lost it
    # (config/train_add_object.yaml; docs/results.md, "Adding an object (issue 20)").
    init_blend: float = 1.0
    net: NetConfig = field(default_factory=NetConfig)

    def __post_init__(self) -> None:
        # YAML reads "2e-3" as a string: coerce numbers here, fail early on nonsense.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float") and not isinstance(value, bool):
                object.__setattr__(self, f.name, (int if f.type == "int" else float)(value))
        small = [k for k in ("batch_size", "iterations", "val_every", "ckpt_every")
                 if getattr(self, k) < 1]  # fmt: skip
        if small:
            raise ValueError(f"train config values must be >= 1: {small}")
        if not 0.0 < self.init_blend <= 1.0:
            raise ValueError(f"init_blend must be in (0, 1], got {self.init_blend}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "net": self.net.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown train config keys: {sorted(unknown)}")
        net = NetConfig.from_dict(d.get("net") or {})
        return cls(**{**d, "net": net, "trainable": tuple(d.get("trainable") or ())})


def gcf_loss(
    out: GcfOutput,
    batch: ShardBatch,
    config: TrainConfig,
    diameter: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """(scalar loss, stats) over the foreground pixels; stats: "loss", "epe", "weight_loss" and,
    with the pose loss, the batch medians "pose_px" and "rot1_deg" after the one-step solve.

    ``diameter`` (B,) metres is needed when ``config.pose_loss_factor`` > 0."""
    mask = batch.mask.to(out.field.dtype)
    count = mask.sum().clamp_min(1.0)
    sq = (out.field - batch.field).square().sum(dim=1)  # (B, S, S)
    field_loss = ((sq + config.charbonnier_eps**2).sqrt() * mask).sum() / count
    epe = sq.detach().sqrt()
    stats = {"epe": float((epe * mask).sum() / count)}
    loss = field_loss
    if out.weight_logits is not None:
        target = torch.exp(-epe / config.weight_tau_px)[:, None]
        bce = F.binary_cross_entropy_with_logits(out.weight_logits, target, reduction="none")
        weight_loss = (bce[:, 0] * mask).sum() / count
        loss = loss + config.weight_loss_factor * weight_loss
        stats["weight_loss"] = float(weight_loss.detach())
    if config.pose_loss_factor > 0:
        if diameter is None or not batch.has_geometry:
            raise ValueError("the pose loss needs the shards' poses and the models' diameters")
        step = one_step_error(
            out.field, out.weight, batch.render, batch.mask, batch.T_init, batch.T_true,
            batch.K_window, diameter, config.pose_loss_damping, config.pose_loss_pixels,
        )  # fmt: skip
        cap = config.pose_loss_cap_px
        pose = saturate(step.error_px, cap) + config.pose_loss_rotation * saturate(
            step.rotation_deg, cap
        )
        pose = pose.mean()
        loss = loss + config.pose_loss_factor * pose.to(loss.dtype)
        stats["pose_px"] = float(step.error_px.detach().median())
        stats["rot1_deg"] = float(step.rotation_deg.detach().median())
    if config.mask_loss_factor > 0:
        mask_loss = visible_mask_loss(out, batch)
        loss = loss + config.mask_loss_factor * mask_loss
        stats["mask_loss"] = float(mask_loss.detach())
    stats["loss"] = float(loss.detach())
    return loss, stats


def visible_mask_loss(out: GcfOutput, batch: ShardBatch) -> torch.Tensor:
    """Mean BCE of the visible-mask head over the window pixels inside the image (the image
    branch is zero outside it)."""
    if out.visible_logits is None or batch.visible is None:
        raise ValueError("the mask loss needs a network with mask_head and shards with 'visible'")
    inside = (batch.image.amax(1) > 0).to(out.visible_logits.dtype)
    bce = F.binary_cross_entropy_with_logits(
        out.visible_logits[:, 0], batch.visible.to(out.visible_logits.dtype), reduction="none"
    )
    return (bce * inside).sum() / inside.sum().clamp_min(1.0)


def resolve_device(name: str) -> torch.device:
    """torch.device(name); "cuda" falls back to the CPU with a warning when no GPU is usable."""
    if name == "cuda" and not torch.cuda.is_available():
        tqdm.write("gcf-train: warning: CUDA is not available, training on the CPU")
        return torch.device("cpu")
    return torch.device(name)


class Trainer:
    """Owns the data, the network, the optimiser and the run folder of one training run."""

    def __init__(
        self,
        config: TrainConfig,
        root: str | Path = ".",
        device: str = "cpu",
        diameters: dict[str, float] | None = None,
        data_on_device: bool = False,
    ) -> None:
        """``diameters`` (model id -> metres) are needed by the pose loss (and its validation);
        ``data_on_device`` keeps the whole data set on ``device`` (a GPU with room for it)."""
        self.config, self.root = config, Path(root)
        self.device = resolve_device(device)
        self.out_dir = self._path(config.out_dir)
        self.train_set = ShardDataset(self._path(config.train_dir))
        self.val_set = ShardDataset(self._path(config.val_dir), config.val_max_samples)
        if len(self.train_set) < config.batch_size:
            raise ValueError(f"{len(self.train_set)} training samples < batch {config.batch_size}")
        if data_on_device:
            self.train_set.to(self.device)
            self.val_set.to(self.device)
        self._diameters = {
            "train": _diameter_table(self.train_set, diameters),
            "val": _diameter_table(self.val_set, diameters),
        }
        if config.pose_loss_factor > 0 and self._diameters["train"] is None:
            raise ValueError("pose_loss_factor > 0 needs shards with poses and model diameters")
        torch.manual_seed(config.seed)
        self.net = GcfNet(config.net).to(self.device)
        for name, p in self.net.named_parameters():
            p.requires_grad_(not config.trainable or name.startswith(config.trainable))
        self.optimizer = torch.optim.AdamW(
            [p for p in self.net.parameters() if p.requires_grad],
            lr=config.lr, weight_decay=config.weight_decay,
        )  # fmt: skip
        self.total_iterations = config.iterations  # the schedule's end; fit may shorten it
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: _lr_factor(step, config.warmup_steps, self.total_iterations),
        )
        self.iteration = 0
        self.init_meta: dict | None = None  # set by init_from_weights
        # the --init file's network (None when grown) and meta, for export(); kept in checkpoints
        self._init: dict | None = None
        self.best = {"val_epe": math.inf, "iteration": -1}
        self._epoch_order: tuple[int, np.ndarray] | None = None

    def _path(self, p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else self.root / p

    def batch_indices(self, iteration: int) -> np.ndarray:
        """The sample indices of training iteration ``iteration`` (0-based), see module doc."""
        per_epoch = len(self.train_set) // self.config.batch_size
        epoch, j = divmod(iteration, per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            rng = np.random.default_rng([self.config.seed, epoch])
            self._epoch_order = (epoch, rng.permutation(len(self.train_set)))
        b = self.config.batch_size
        return self._epoch_order[1][j * b : (j + 1) * b]

    def step(self) -> dict:
        """One optimisation step on the next batch; returns its loss statistics."""
        batch = self.train_set.batch(self.batch_indices(self.iteration)).to(self.device)
        self._train_mode()
        diameter = self.batch_diameters("train", batch)
        image = augment_images(batch.image) if self.config.augment else batch.image
        loss, stats = gcf_loss(self.net(image, batch.render), batch, self.config, diameter)
        if not math.isfinite(stats["loss"]):
            self._stop("loss", stats["loss"], batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        if not math.isfinite(float(grad_norm)):
            self._stop("gradient norm", float(grad_norm), batch)
        self.optimizer.step()
        self.scheduler.step()
        self.iteration += 1
        return {**stats, "grad_norm": float(grad_norm)}

    def _stop(self, what: str, value: float, batch: ShardBatch) -> None:
        """Raise NonFiniteError for training iteration ``self.iteration + 1`` (before its
        optimiser step: the weights stay those of the last finite step), naming the batch's
        non-finite inputs if it has any."""
        message = f"iteration {self.iteration + 1}: the {what} is {value}"
        inputs = {k: getattr(batch, k) for k in ("image", "render", "field")}
        data = non_finite_counts(inputs)
        if data:
            rows = torch.zeros(len(batch.field), dtype=torch.bool)
            for t in inputs.values():
                rows |= (~torch.isfinite(t)).flatten(1).any(1).cpu()
            order = np.sort(self.batch_indices(self.iteration))  # ShardDataset.batch's rows
            samples = order[rows.numpy()].tolist()
            counts = ", ".join(f"{k} ({n} values)" for k, n in data.items())
            message += (f"; the batch's data is not finite: {counts} in training samples "
                        f"{samples}: regenerate them with gcf-synth")  # fmt: skip
        raise NonFiniteError(message)

    def batch_diameters(self, split: str, batch: ShardBatch) -> torch.Tensor | None:
        """(B,) diameters (m) of a ``split`` ("train" / "val") batch's models; None without them."""
        table = self._diameters[split]
        if table is None or batch.model_idx is None:
            return None
        return table.to(batch.model_idx.device)[batch.model_idx]

    @torch.inference_mode()
    def validate(self) -> dict:
        """Mean EPE over all validation foreground pixels, that of the zero field, frac < 1 px;
        with poses and diameters also the medians over samples of the one-step reprojection error
        (``val_pose_px``; ``val_pose0_px`` at T0) and rotation error (``val_rot1_deg``), and
        ``val_pose_score`` = val_pose_px + pose_loss_rotation x val_rot1_deg."""
        self.net.eval()
        sums = torch.zeros(4, dtype=torch.float64)  # epe, zero-field epe, count < 1 px, pixels
        steps: list[torch.Tensor] = []  # (3, B): error after, error at T0, rotation after
        mask_losses: list[float] = []  # per batch
        ious: list[torch.Tensor] = []  # per sample
        for cpu_batch in self.val_set.batches(self.config.val_batch_size):
            b = cpu_batch.to(self.device)
            out = self.net(b.image, b.render)
            if out.visible_logits is not None and b.visible is not None:
                mask_losses.append(float(visible_mask_loss(out, b)))
                pred, true = out.visible_logits[:, 0] > 0, b.visible
                inter = (pred & true).flatten(1).sum(1)
                union = (pred | true).flatten(1).sum(1).clamp_min(1)
                ious.append((inter / union).cpu())
            epe = (out.field - b.field).norm(dim=1)
            m = b.mask
            part = [epe[m].sum(), b.field.norm(dim=1)[m].sum(), (epe[m] < 1.0).sum(), m.sum()]
            sums += torch.stack([p.double().cpu() for p in part])
            diameter = self.batch_diameters("val", b)
            if diameter is not None:
                r = one_step_error(out.field, out.weight, b.render, m, b.T_init, b.T_true,
                                   b.K_window, diameter, self.config.pose_loss_damping)  # fmt: skip
                steps.append(torch.stack([r.error_px, r.error0_px, r.rotation_deg]).cpu())
        n = max(float(sums[3]), 1.0)
        record = {
            "val_epe": float(sums[0]) / n,
            "val_epe_zero": float(sums[1]) / n,
            "val_frac_lt1px": float(sums[2]) / n,
            "val_pixels": int(sums[3]),
        }
        if ious:
            record["val_mask_loss"] = sum(mask_losses) / len(mask_losses)
            record["val_mask_iou"] = float(torch.cat(ious).mean())
        if steps:
            med = torch.cat(steps, dim=1).median(dim=1).values
            record.update(val_pose_px=float(med[0]), val_pose0_px=float(med[1]),
                          val_rot1_deg=float(med[2]))  # fmt: skip
            record["val_pose_score"] = float(med[0] + self.config.pose_loss_rotation * med[2])
        return record

    @property
    def selection_key(self) -> str:
        """The validation number best.pt minimises: the one-step pose score (reprojection px +
        ``pose_loss_rotation`` x rotation degrees) when the pose loss trains, else the EPE."""
        if self.config.trainable and self.config.mask_loss_factor > 0:
            return "val_mask_loss"  # only (mask) heads train: the field stays what it was
        return "val_pose_score" if self.config.pose_loss_factor > 0 else "val_epe"

    def _train_mode(self) -> None:
        """Train mode for the trainable modules only (frozen batch norms keep their statistics)."""
        if not self.config.trainable:
            self.net.train()
            return
        self.net.eval()
        for name, module in self.net.named_modules():
            if name and name.startswith(self.config.trainable):
                module.train()

    def fit(
        self,
        progress: bool = True,
        max_seconds: float | None = None,
        stop_after: int | None = None,
        fit_schedule: bool = False,
    ) -> dict:
        """Train up to ``config.iterations``, validating, logging and checkpointing on the way.

        ``max_seconds``: stop early once this much wall time has passed; ``stop_after``: stop
        after that iteration of the planned schedule (both validate and checkpoint the last step
        first). ``fit_schedule`` (with ``max_seconds``): after ``FIT_PROBE`` steps, end the cosine
        schedule at the iteration the measured rate reaches in ``max_seconds`` (never later than
        ``config.iterations``), so a time-boxed run still decays its learning rate to zero.
        Returns the last validation record."""
        c, record = self.config, {}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(initial=self.iteration, total=self.total_iterations, disable=not progress,
                   unit="it")  # fmt: skip
        window: list[dict] = []  # training statistics since the last validation
        start, first = time.perf_counter(), self.iteration
        while self.iteration < self.total_iterations:
            window.append(self.step())
            bar.update(1)
            if fit_schedule and max_seconds is not None and self.iteration - first == FIT_PROBE:
                self._fit_schedule(time.perf_counter() - start, max_seconds)
                bar.total = self.total_iterations
            recent = window[-50:]
            loss, epe = (sum(s[k] for s in recent) / len(recent) for k in ("loss", "epe"))
            bar.set_postfix(loss=f"{loss:.3f}", epe=f"{epe:.2f}")
            late = (max_seconds is not None and time.perf_counter() - start > max_seconds) or (
                stop_after is not None and self.iteration >= stop_after
            )
            done = self.iteration == self.total_iterations or late
            if late:
                tqdm.write(f"gcf-train: stopping early at iteration {self.iteration}")
            if self.iteration % c.val_every == 0 or done:
                mean = {k: sum(s[k] for s in window) / len(window) for k in window[0]}
                record = self._validate_and_log(mean, time.perf_counter() - start)
                window = []
            if self.iteration % c.ckpt_every == 0 or done:
                self.save_checkpoint(self.out_dir / "last.pt")
            if late:
                break
        bar.close()
        return record

    def _fit_schedule(self, elapsed: float, max_seconds: float) -> None:
        """End the schedule where ``FIT_PROBE`` steps in ``elapsed`` s extrapolate to
        ``max_seconds``, less ``FIT_RESERVE`` of the rest for validation and checkpoints."""
        rate = FIT_PROBE / max(elapsed, 1e-6)
        more = int(rate * max(0.0, max_seconds - elapsed) * (1.0 - FIT_RESERVE))
        self.total_iterations = max(self.iteration + 1, min(self.config.iterations,
                                                            self.iteration + more))  # fmt: skip
        tqdm.write(
            f"gcf-train: {rate:.1f} it/s, the schedule ends at iteration {self.total_iterations}"
            f" to fit {max_seconds / 60:.1f} min"
        )

    def _validate_and_log(self, train_stats: dict, seconds: float) -> dict:
        """Validate, keep best.pt, append the record to log.jsonl and print it."""
        validation = self.validate()
        check_finite_record(validation, f"validation at iteration {self.iteration}")
        record = {
            "iteration": self.iteration,
            "lr": self.scheduler.get_last_lr()[0],
            **{f"train_{k}": v for k, v in train_stats.items()},
            **validation,
            "seconds": round(seconds, 1),
        }
        key = self.selection_key
        if record[key] < self.best.get(key, math.inf):
            self.best = {key: record[key], "val_epe": record["val_epe"],
                         "iteration": self.iteration}  # fmt: skip
            self.save_checkpoint(self.out_dir / "best.pt")
        line = json.dumps(record)
        tqdm.write(line)
        with open(self.out_dir / "log.jsonl", "a") as f:
            f.write(line + "\n")
        return record

    def save_checkpoint(self, path: str | Path) -> None:
        """Everything needed to continue exactly: model, optimiser, scheduler, iteration, RNG."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "iteration": self.iteration,
            "total_iterations": self.total_iterations,
            "best": dict(self.best),
            "rng": rng,
            "config": self.config.to_dict(),
        }
        if self._init is not None:
            state["init"] = {**self._init, "record": self.init_meta}
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a ``save_checkpoint`` file; the next ``step`` continues where it stopped."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing = [k for k in CHECKPOINT_KEYS if k not in state]
        if missing:
            raise ValueError(f"{path} is not a training checkpoint (missing {missing})")
        if state["config"]["net"] != self.config.net.to_dict():
            raise ValueError(f"{path} holds another network: {state['config']['net']}")
        changed = _changed_keys(state["config"], self.config.to_dict())
        if changed:
            tqdm.write(f"gcf-train: warning: resuming with changed settings {changed}")
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.iteration, self.best = int(state["iteration"]), dict(state["best"])
        if "init" in state:
            self.init_meta = state["init"]["record"]
            self._init = {k: v for k, v in state["init"].items() if k != "record"}
        if state["config"]["iterations"] == self.config.iterations:  # a fitted schedule goes on
            self.total_iterations = int(state.get("total_iterations", self.config.iterations))
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def init_from_weights(self, path: str | Path) -> None:
        """Start from the network of a ``save_gcf_weights`` file: the same NetConfig, or the same
        but for cost volumes (then grown with ``grow_state_dict``)."""
        net, meta = load_gcf_weights(path)
        old, new = net.config.to_dict(), self.config.net.to_dict()
        grown: list[str] = []
        if old == new:
            self.net.load_state_dict(net.state_dict())
        elif {k: v for k, v in old.items() if not k.startswith(("corr_", "mask_head"))} == {
            k: v for k, v in new.items() if not k.startswith(("corr_", "mask_head"))
        }:  # the same network plus cost volumes or a mask head: start from what it computed
            state, grown = grow_state_dict(net.state_dict(), self.net)
            self.net.load_state_dict(state)
            tqdm.write(f"gcf-train: grew {path} ({len(grown)} tensors new/widened)")
        elif net.config.input_stride == 1 < self.config.net.input_stride:
            # the same network on a pixel-unshuffled window: start from what it computed there
            state, grown = stride_state_dict(net.state_dict(), net.config, self.net)
            self.net.load_state_dict(state)
            tqdm.write(f"gcf-train: strided {path} (input_stride {self.config.net.input_stride})")
        else:
            raise ValueError(f"{path} holds another network: {old}")
        self.init_meta = {"path": str(path), "command": meta.get("command", ""),
                          "val_epe": meta.get("val_epe"), "grown": grown}  # fmt: skip
        if grown and self.config.init_blend != 1.0:
            raise ValueError(f"init_blend < 1 needs --init of the same network; {path} was grown")
        state = None if grown else {k: v.detach().clone() for k, v in net.state_dict().items()}
        self._init = {"state": state, "meta": meta}

    @property
    def export_path(self) -> Path:
        """Where :meth:`export` writes by default (``config.export``, relative to the root)."""
        return self._path(self.config.export)

    def export(
        self, path: str | Path | None = None, command: str = "", overwrite_shipped: bool = False
    ) -> Path:
        """Write the weights-only file of the best checkpoint (else the current net), blended
        with the ``init_from_weights`` network by ``config.init_blend``, with the refiner
        settings (damping, threshold) of that file when it recorded some and was trained at the
        same window size (a fine-tune), else the defaults.

        Raises ValueError for a path in the shipped weights folder unless ``overwrite_shipped``,
        NonFiniteError when the weights or the best validation number are not finite."""
        path = self.export_path if path is None else Path(path)
        check_export_path(path, overwrite_shipped)
        if any(isinstance(v, float) and math.isnan(v) for v in self.best.values()):
            raise NonFiniteError(f"the best validation record is NaN: {self.best}")
        best_path, net = self.out_dir / "best.pt", self.net
        if best_path.is_file():
            net = GcfNet(self.config.net)
            state = torch.load(best_path, map_location="cpu", weights_only=True)
            net.load_state_dict(state["model"])
        if self.config.init_blend != 1.0:
            net = self._blended(net)
        check_finite_state(net.state_dict(), f"the weights to export to {path}")
        training = {
            "train_config": self.config.to_dict(),
            "iteration": self.iteration,
            "best_iteration": int(self.best["iteration"]),
            "val_epe": float(self.best["val_epe"]),
            "best": dict(self.best),
            "command": command,
            "init": self.init_meta,
            "data": {
                "train": _manifest_summary(self.train_set),
                "val": _manifest_summary(self.val_set),
            },
            "torch": str(torch.__version__),
        }
        models = tuple(str(m) for m in self.train_set.model_ids)  # its shards' models
        meta = WeightsMeta(
            window_size=int(self.train_set.size), training=training, trained_models=models
        )
        recorded = self._init["meta"] if self._init else {}
        init = WeightsMeta.from_dict(recorded)
        if recorded.get("refiner") and init.window_size == meta.window_size:  # a fine-tune
            note = f"inherited from {self.init_meta['path']} (--init), not re-tuned: {init.note}"
            meta = dataclasses.replace(init, note=note, training=training, trained_models=models)
        save_gcf_weights(path, net, meta.to_dict())
        load_gcf_weights(path)  # fail here, not in the refiner, if the file does not load
        return path

    def _blended(self, net: GcfNet) -> GcfNet:
        """``net`` moved back towards the init network: init + init_blend * (net - init) for
        every float tensor (batch-norm statistics too), the trained value for the others."""
        if self._init is None or self._init["state"] is None:
            raise ValueError("init_blend < 1 needs a run started with --init from the same network")
        alpha, init = self.config.init_blend, self._init["state"]
        state = {k: init[k] + alpha * (v - init[k]) if v.is_floating_point() else v
                 for k, v in net.state_dict().items()}  # fmt: skip
        out = GcfNet(self.config.net)
        out.load_state_dict(state)
        return out


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _diameter_table(ds: ShardDataset, diameters: dict[str, float] | None) -> torch.Tensor | None:
    """(M,) float32 diameters in the order of ``ds.model_ids``; None without poses or diameters."""
    if diameters is None or not ds.model_ids:
        return None
    missing = [i for i in ds.model_ids if i not in diameters]
    if missing:
        raise ValueError(f"no diameter for the shards' models {missing}")
    return torch.tensor([float(diameters[i]) for i in ds.model_ids], dtype=torch.float32)


def _changed_keys(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _manifest_summary(ds: ShardDataset) -> dict:
    """Plain summary of a dataset's manifest: seeds and provenance."""
    m = ds.manifest
    keys = ("seed", "generator", "generator_version", "created", "num_samples", "level_names")
    out = {k: m[k] for k in keys if k in m}
    out["shard_seeds"] = [s["seed"] for s in m.get("shards", []) if isinstance(s, dict)]
    out.update(root=str(ds.root), samples_used=len(ds), shards=list(ds.shard_names))
    return out
