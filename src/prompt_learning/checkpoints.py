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

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .backbones import Backbone
from .method import PromptMethod

FORMAT = 2  # bump when the layout changes
WEIGHTS = "prompt.safetensors"
CONFIG = "prompt_config.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded here; the message names the fix."""


def embedding_hash(embeddings: torch.Tensor, rows: int = 4096) -> str:
    """SHA-256 of an evenly spaced sample of the input-embedding rows, rounded to bf16.

    The rounding makes a backbone loaded in fp32 or bf16 hash alike; the sample keeps it cheap
    for a large vocabulary (a few MB hashed, whatever the model).
    """
    step = max(1, embeddings.shape[0] // rows)
    sample = embeddings.detach()[::step].to("cpu", torch.bfloat16).contiguous()
    return hashlib.sha256(sample.view(torch.int16).numpy().tobytes()).hexdigest()


def backbone_fingerprint(backbone: Backbone) -> dict:
    """What must match for a prompt to mean the same thing: name, architecture, sizes, embeddings."""
    cfg = backbone.model.config
    emb = backbone.model.get_input_embeddings().weight
    return {
        "name": backbone.name,
        "kind": backbone.kind,
        "model_type": cfg.model_type,
        "architecture": type(backbone.model).__name__,
        "vocab_size": int(emb.shape[0]),
        "hidden_size": int(emb.shape[1]),
        "num_hidden_layers": getattr(cfg, "num_hidden_layers", None),
        "embeddings_sha256": embedding_hash(emb),
    }


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
    tensors = {name: p.detach().cpu().contiguous() for name, p in _trainable(method).items()}
    if not tensors:
        raise CheckpointError("the method has no trainable parameters to save")
    cls = type(method)
    meta = {
        "format": FORMAT,
        "method": f"{cls.__module__}:{cls.__qualname__}",
        "backbone": method.backbone_fingerprint,
        "spec": method.checkpoint_spec(),
        "parameters": {name: list(t.shape) for name, t in tensors.items()},
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        save_file(tensors, tmp / WEIGHTS, metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2))
        if folder.exists():  # move the old one aside, put the new one in place, then delete the old
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
            os.replace(folder, old / "ckpt")
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


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
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{folder} has checkpoint format {meta.get('format')}, this library reads {FORMAT}"
        )
    return meta


def _method_class(ref: str) -> type:
    module, _, name = ref.partition(":")
    if not module.startswith("prompt_learning."):  # never import code a JSON file names elsewhere
        raise CheckpointError(f"checkpoint names method {ref!r}, which is not part of prompt_learning")
    cls = getattr(importlib.import_module(module), name, None)
    if cls is None or not hasattr(cls, "from_checkpoint_spec"):
        raise CheckpointError(f"checkpoint names method {ref!r}, which this library cannot rebuild")
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
