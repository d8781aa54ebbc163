"""Checkpoints of prompt parameters only: a few kilobytes instead of the backbone's gigabytes.

``save_prompt(method, folder)`` writes two files:

* ``prompt.safetensors`` — the parameters that train (the prompt, a prompt encoder, a head);
* ``prompt_config.json`` — the method's class and settings (template, label words, config) and
  the backbone it was trained on, by name and by shape.

Every method of the book (:class:`~prompt_learning.method.PromptMethod`) saves this way: PET and
full fine-tuning save every weight (they all train), a prompt method only its prompt, encoder and head.

``load_prompt(folder, backbone)`` rebuilds the method on ``backbone`` and loads the parameters.
A prompt only means something in the embedding space it was trained in, so a checkpoint is
refused, with the name of the backbone it needs, on any other backbone: the backbone is named by
its name, its architecture, its sizes and a hash of its input embeddings (taken when the method was
built, before any training). A damaged file is a :class:`CheckpointError` that names the file. The
folder is written under a temporary name and renamed when complete: a crash never leaves half a
checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .artifacts import write_folder
from .backbones import Backbone, backbone_fingerprint
from .errors import PromptLearningError
from .method import REGISTRY, PromptMethod

FORMAT = 3  # bump when the layout changes; 3: the method by its registered name (2: module:qualname)
READS = (2, 3)
WEIGHTS = "prompt.safetensors"
CONFIG = "prompt_config.json"


class CheckpointError(PromptLearningError, ValueError):
    """A checkpoint that cannot be loaded here; the message names the fix."""


def _trainable(method: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in method.named_parameters() if p.requires_grad}


def save_prompt(method: nn.Module, folder: str | Path) -> Path:
    """Save ``method``'s trainable parameters and settings to ``folder`` (replaced if present)."""
    if not isinstance(method, PromptMethod):
        raise CheckpointError(
            f"{type(method).__name__} is not a prompt_learning method: only PromptMethod "
            "subclasses describe themselves for a checkpoint (checkpoint_spec())"
        )
    folder = Path(folder)
    # none for a method that trains nothing (zero-shot, AutoPrompt): its spec is the whole prompt
    tensors = {name: p.detach().cpu().contiguous() for name, p in _trainable(method).items()}
    cls = type(method)
    meta = {
        "format": FORMAT,
        "method": cls.__name__,  # its name in prompt_learning.method.REGISTRY
        "backbone": method.backbone_fingerprint,
        "spec": method.checkpoint_spec(),
        "parameters": {name: list(t.shape) for name, t in tensors.items()},
    }

    def fill(tmp: Path) -> None:
        save_file(tensors, tmp / WEIGHTS, metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2))

    return write_folder(folder, fill)


def read_config(folder: str | Path) -> dict:
    """The JSON half of a checkpoint (which method, which backbone)."""
    path = Path(folder) / CONFIG
    if not path.exists():
        raise CheckpointError(f"{folder} is not a prompt checkpoint: {CONFIG} is missing")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is damaged ({e}); save the method again with save_prompt") from e
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{path} is not a checkpoint description; save the method again with save_prompt"
        )
    if meta.get("format") not in READS:
        raise CheckpointError(
            f"{folder} has checkpoint format {meta.get('format')}, this library reads {list(READS)}"
        )
    return meta


def _method_class(ref: str) -> type:
    """The registered method a checkpoint names: ``"PromptTuning"`` (format 3) or, in format 2,
    ``"prompt_learning.soft_prompts:PromptTuning"``, read by its class name wherever it lives now."""
    module, colon, name = ref.rpartition(":")
    if colon and not module.startswith("prompt_learning."):  # never a class a JSON file names elsewhere
        raise CheckpointError(f"checkpoint names method {ref!r}, which is not part of prompt_learning")
    cls = REGISTRY.get(name)
    if cls is None or not hasattr(cls, "from_checkpoint_spec"):
        raise CheckpointError(
            f"checkpoint names method {ref!r}, which this library cannot rebuild; it knows {sorted(REGISTRY)}"
        )
    return cls


def load_prompt(folder: str | Path, backbone: Backbone) -> nn.Module:
    """The method saved in ``folder``, rebuilt on ``backbone`` with its trained parameters."""
    meta = read_config(folder)
    want, have = meta["backbone"], backbone_fingerprint(backbone)
    if want != have:
        diff = {
            k: (want.get(k), have.get(k))
            for k in sorted(want.keys() | have.keys())
            if want.get(k) != have.get(k)
        }
        raise CheckpointError(
            f"this prompt was trained on backbone {want['name']!r} ({want['model_type']}, hidden size "
            f"{want['hidden_size']}, vocabulary {want['vocab_size']}), not on {have['name']!r}: a soft "
            f"prompt only means something in the embedding space it was trained in (differs: {diff}). "
            f"Load it with load_backbone({want['name']!r})."
        )
    weights = Path(folder) / WEIGHTS
    try:
        tensors = load_file(str(weights))
    except Exception as e:  # safetensors raises its own SafetensorError, or OSError for a missing file
        raise CheckpointError(
            f"{weights} cannot be read ({e}): the file is damaged or truncated; "
            "save the method again with save_prompt (or copy the file again)"
        ) from e
    method = _method_class(meta["method"]).from_checkpoint_spec(backbone, meta["spec"])
    method.prepare_load(meta["spec"])
    params = _trainable(method)
    if set(tensors) != set(params):
        raise CheckpointError(
            f"{folder}: saved parameters {sorted(tensors)} do not match the method's "
            f"{sorted(params)}; the checkpoint is damaged or from another version"
        )
    with torch.no_grad():
        for name, p in params.items():
            if tensors[name].shape != p.shape:
                raise CheckpointError(
                    f"{folder}: parameter {name} has shape {list(tensors[name].shape)}, "
                    f"the method expects {list(p.shape)}"
                )
            p.copy_(tensors[name].to(p.device, p.dtype))
    return method.eval()
