"""The models ``gcf-eval`` evaluates with: ``--models``, ``--dataset-unit`` and ``--model-id``.

- no ``--models``: the dataset's own ``models/`` folder (meshes, models_info.json), in the
  dataset's unit (``--dataset-unit``, millimetres by BOP's convention);
- ``--models REGISTRY.yaml``: a model registry (``ModelRegistry.from_yaml``), whose units and
  symmetries are its own; the dataset's models/ folder is not read;
- ``--models FOLDER`` or ``--models FOLDER/models_info.json``: another BOP models folder, in the
  dataset's unit.

BOP object N is the registry id ``obj_NNNNNN`` unless ``--model-id N=ID`` maps it. Every object
annotated in the dataset needs a model (occluders too: the oracle masks render them), checked
before anything is evaluated.
"""

from __future__ import annotations

from pathlib import Path

from gcf_ros.core.bop import BopDataset
from gcf_ros.core.bop_models import bop_model_registry
from gcf_ros.core.models import ModelRegistry

__all__ = ["check_models_cover", "load_registry", "parse_model_ids"]

_YAML_SUFFIXES = (".yaml", ".yml")


def parse_model_ids(items: list[str]) -> dict[int, str]:
    """``["1=mug", "5=can"]`` → ``{1: "mug", 5: "can"}``; ValueError naming a malformed item."""
    out: dict[int, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            obj_id = int(key)
        except ValueError:
            obj_id = -1
        if not sep or obj_id < 0 or not value.strip():
            raise ValueError(f"--model-id {item!r}: expected OBJ_ID=MODEL_ID, e.g. 1=mug")
        model_id = value.strip()
        if out.get(obj_id, model_id) != model_id:
            raise ValueError(
                f"--model-id: object {obj_id} mapped twice: {out[obj_id]!r}, {model_id!r}"
            )
        out[obj_id] = model_id
    return out


def load_registry(models: Path | None, dataset: BopDataset) -> ModelRegistry:
    """The registry of ``--models`` (see the module docstring); FileNotFoundError / ValueError
    naming the file."""
    if models is None:
        return dataset.model_registry()
    models = Path(models).expanduser()
    if models.suffix.lower() in _YAML_SUFFIXES:
        return ModelRegistry.from_yaml(models)
    return bop_model_registry(models, dataset.unit_to_m, model_id=dataset.model_id)


def check_models_cover(dataset: BopDataset, registry: ModelRegistry, source: str) -> None:
    """ValueError naming every object of ``dataset`` that has no model in ``registry``."""
    missing: dict[int, str] = {}
    for frame in dataset.frames():
        for inst in frame.instances:
            if inst.model_id not in registry:
                missing[inst.obj_id] = inst.model_id
    if missing:
        names = ", ".join(f"{k} ({v!r})" for k, v in sorted(missing.items()))
        raise ValueError(
            f"{source}: no model for BOP object(s) {names} of {dataset.root}; its ids are "
            f"{list(registry.ids)}. Add them, or map BOP ids to its ids with --model-id N=ID"
        )
