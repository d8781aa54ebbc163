"""Memory and time of a training run, estimated from the architecture alone (no hub, no GPU needed).

:func:`estimate_training_memory` adds up the peak of one training step, in bytes:

* **weights** — every parameter, fp32 under the book's precision rule (4 bytes; 2 if loaded in 16-bit);
* **gradients** and **optimizer states** — for the trainable parameters only: an fp32 gradient
  (4 bytes) and AdamW's two moments (8 bytes). Full fine-tuning in fp32 with AdamW costs 16 bytes a
  parameter before any activation: 27.4 GB for SmolLM2-1.7B;
* **weight copies** — under autocast every matmul reads a 16-bit copy of its fp32 weight; when the
  backward runs through the backbone those copies are kept for it (2 bytes a parameter);
* **activations** — what the forward keeps for the backward (``layer_activation_bytes``, after
  Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", §4.1),
  plus the **logits** the loss reads; for a forward without backward, one layer's working set;
* **step scratch** — AdamW (foreach) makes one fp32 tensor the size of the trainable parameters
  during ``step()``, after the activations are freed: the peak is the larger of the two.

:func:`estimate_seconds` turns FLOPs (2·N per token forward, 4·N with gradients to the input, 6·N
with weight gradients; Kaplan et al. 2020) into seconds at an assumed sustained throughput
(``THROUGHPUT``). The CUDA context (0.3–0.5 GB) and allocator fragmentation are not counted:
keep ~1 GB of a card free. ``prompt_learning.budgets`` applies it to each chapter's runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

GB = 1e9  # decimal gigabytes, as GPU memory is sold (a "16 GB" T4 has 15.8e9 bytes, 14.7 GiB)


@dataclass(frozen=True)
class Architecture:
    """The numbers of a transformer that memory and FLOPs depend on (from its config.json)."""

    name: str
    hidden: int  # d_model
    layers: int
    heads: int  # query heads
    kv_heads: int  # key/value heads (= heads without grouped-query attention)
    intermediate: int  # MLP width
    vocab: int
    params: int  # every parameter, tied embeddings counted once
    gated_mlp: bool = False  # SwiGLU MLP (Llama) instead of one activation between two linears (BERT)
    rms_norm: bool = False  # RMSNorm (Llama) instead of LayerNorm (BERT)
    dropout: bool = True  # dropout layers in the residual branches (BERT/RoBERTa: 0.1; Llama: none)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        """Width of a layer's keys (and of its values): ``kv_heads × head_dim``."""
        return self.kv_heads * self.head_dim

    @property
    def body_params(self) -> int:
        """Parameters outside the token embedding (the ones a token's FLOPs go through)."""
        return self.params - self.vocab * self.hidden


def _llama(name, hidden, layers, heads, kv_heads, intermediate, params) -> Architecture:
    return Architecture(
        name,
        hidden,
        layers,
        heads,
        kv_heads,
        intermediate,
        49152,
        params,
        gated_mlp=True,
        rms_norm=True,
        dropout=False,
    )


# Public configs (config.json of each repository); parameter counts of the transformers classes the
# book loads them with (LlamaForCausalLM, RobertaForMaskedLM, BertForMaskedLM, BertModel), checked
# against transformers' configs on the meta device in tests/unit/test_memory.py.
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        _llama("HuggingFaceTB/SmolLM2-1.7B-Instruct", 2048, 24, 32, 32, 8192, 1_711_376_384),
        _llama("HuggingFaceTB/SmolLM2-360M-Instruct", 960, 32, 15, 5, 2560, 361_821_120),
        _llama("HuggingFaceTB/SmolLM2-135M-Instruct", 576, 30, 9, 3, 1536, 134_515_008),
        _llama("smollm2-135m", 576, 30, 9, 3, 1536, 134_515_008),  # the embedded copy of the same model
        Architecture("roberta-large", 1024, 24, 16, 16, 4096, 50265, 355_412_057),
        Architecture("roberta-base", 768, 12, 12, 12, 3072, 50265, 124_697_433),
        Architecture("bert-base-chinese", 768, 12, 12, 12, 3072, 21128, 102_290_312),
        Architecture("minilm-l6", 384, 6, 12, 12, 1536, 30522, 22_713_216),
    )
}

OPTIMIZER_BYTES = {"adamw": 8, "adam": 8, "sgd": 0}  # state per trainable parameter (fp32)
LOGIT_COPIES = 2  # the fp32 logits and the log-softmax the cross-entropy keeps for the backward


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of one training step, by kind (``total`` is what must fit on the device)."""

    weights: int
    gradients: int
    optimizer_states: int
    weight_copies: int  # 16-bit weights autocast keeps for the backward
    activations: int  # kept for the backward (logits included), or a no-grad forward's working set
    logits: int  # the part of ``activations`` that is logits
    step_scratch: int  # the optimizer step's temporary tensors (after the activations are freed)

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.gradients
            + self.optimizer_states
            + max(self.weight_copies + self.activations, self.step_scratch)
        )

    def __str__(self) -> str:
        parts = ("weights", "gradients", "optimizer_states", "weight_copies", "activations", "step_scratch")
        shown = ", ".join(f"{p} {getattr(self, p) / GB:.2f}" for p in parts)
        return f"{shown} → total {self.total / GB:.2f} GB"


def _trainable(arch: Architecture, trainable: str | tuple[str, int]) -> tuple[str, int]:
    """``"all"``, ``"none"``, ``"head"``, ``("head", n)`` or ``("prompt", n)`` → (mode, count)."""
    kind, count = (trainable, None) if isinstance(trainable, str) else trainable
    if kind == "all":
        return "all", arch.params if count is None else count
    if kind == "none":
        return "none", 0
    if kind == "head":
        return "head", 2 * arch.hidden + 2 if count is None else count
    if kind == "prompt" and count is not None:
        return "prompt", count
    raise InputError(
        f"trainable must be 'all', 'none', 'head', ('head', n) or ('prompt', n), got {trainable!r}"
    )


def _compute_bytes(precision: str) -> int:
    if precision not in ("no", "fp16", "bf16"):
        raise InputError(
            "precision must be resolved to 'no', 'fp16' or 'bf16' "
            f"(precision.resolve_precision), got {precision!r}"
        )
    return 4 if precision == "no" else 2


def layer_activation_bytes(
    arch: Architecture,
    batch: int,
    seq_len: int,
    precision: str,
    backward: str = "all",
    fused_attention: bool = True,
) -> int:
    """Bytes one layer keeps for the backward of a ``(batch, seq_len)`` batch.

    Korthikanti et al. (2022) count ``s·b·h·(34 + 5·a·s/h)`` bytes a layer at 16-bit: the attention
    keeps its input, Q, K, V and the output projection's input (11 with a dropout mask), the MLP its
    input, the activation's input and the second linear's input (19 with ``4h`` and a mask), the two
    norms their inputs (4); ``5·a·s/h`` is the attention matrix, which a fused kernel (sdpa) never
    stores. Here, per ``s·b·h`` and in bytes, with ``c`` the compute precision's (2, or 4 in fp32) and
    ``m = intermediate / hidden``, as autograd does it for fp32 weights under autocast:

    * norms: their fp32 inputs (the residual stream), ``2 × 4``; an RMSNorm (Llama) whose weight
      trains also keeps its normalised output, ``2 × 4`` more;
    * attention: Q, K, V at full width (grouped key/value heads are repeated before the kernel) and
      the kernel's output, ``4c``; when weights train, the projections' inputs too — one 16-bit cast
      for each of q, k and v under autocast (``3c``), one shared fp32 tensor without (``c``);
    * MLP: SwiGLU keeps gate, up, their activation and product (``4m·c``) plus its inputs (one cast
      each for gate and up); GELU keeps its input and output (``2m·c``) plus the first linear's input;
    * with frozen weights (``backward="input"``: gradients flow only to prompts or inputs) a linear
      keeps its weight rather than its input: attention ``4c``, MLP ``3m·c`` (SwiGLU) or ``m·c``;
    * dropout (BERT/RoBERTa) adds a 1-byte mask after the attention and after the MLP.

    Checked against the tensors autograd saves for a small random Llama (tests/unit/test_memory.py).
    """
    c = _compute_bytes(precision)
    mixed = c == 2
    m = arch.intermediate / arch.hidden
    if backward == "all":
        norms = 2 * (4 + (4 if arch.rms_norm else 0))
        attention = (3 if mixed else 1) * c + 4 * c
        mlp = ((2 if mixed else 1) + 4 * m) * c if arch.gated_mlp else (1 + 2 * m) * c
    elif backward == "input":
        norms, attention = 2 * 4, 4 * c
        mlp = (3 * m if arch.gated_mlp else m) * c
    else:
        raise InputError(f"backward must be 'all' or 'input', got {backward!r}")
    per_token = norms + attention + mlp + (2 if arch.dropout else 0)
    out = batch * seq_len * arch.hidden * per_token
    if not fused_attention:  # the attention matrix: softmax output (+ dropout mask and output)
        out += arch.heads * seq_len * seq_len * batch * (c + (1 + c if arch.dropout else 0))
    return int(out)


def estimate_training_memory(
    arch: Architecture,
    trainable: str | tuple[str, int],
    batch: int,
    seq_len: int,
    precision: str,
    optimizer: str = "adamw",
    *,
    logits_kept: int | None = None,
    computed_len: int | None = None,
    kv_cache: bool = False,
    weight_bytes: int = 4,
    fused_attention: bool = True,
) -> MemoryEstimate:
    """Peak memory of one step of a ``(batch, seq_len)`` batch (see the module docstring).

    ``trainable``: ``"all"`` (full fine-tuning), ``("prompt", n)`` (``n`` parameters outside the
    frozen backbone that gradients reach through it: soft prompts, prefixes, P-tuning v2),
    ``"head"`` / ``("head", n)`` (a head on a frozen backbone run without gradients), or ``"none"``
    (a forward only). ``precision``: ``"no"`` (fp32), ``"fp16"`` or ``"bf16"`` autocast.
    ``logits_kept``: positions of the whole batch whose vocabulary logits are computed (default one
    per row; 0 for a classification head). ``computed_len``: tokens a row runs through the layers
    when the rest come from a cache (``kv_cache``: the keys and values of ``seq_len`` tokens are held).
    """
    mode, count = _trainable(arch, trainable)
    c = _compute_bytes(precision)
    if optimizer not in OPTIMIZER_BYTES:
        raise InputError(f"optimizer must be one of {list(OPTIMIZER_BYTES)}, got {optimizer!r}")
    kept = batch if logits_kept is None else logits_kept
    rows_len = computed_len or seq_len
    residual = 2 * batch * rows_len * arch.hidden * 4  # embeddings' output and the final norm's input (fp32)
    if mode in ("all", "prompt"):
        logits = kept * arch.vocab * 4 * LOGIT_COPIES
        backward = "all" if mode == "all" else "input"
        per_layer = layer_activation_bytes(arch, batch, rows_len, precision, backward, fused_attention)
        activations = arch.layers * per_layer + residual + logits
        copies = 2 * arch.params if c == 2 else 0
    else:  # no backward through the backbone: one layer's tensors (and 16-bit weights) at a time
        logits = kept * arch.vocab * 4
        activations = (
            layer_activation_bytes(arch, batch, rows_len, precision, "all", fused_attention)
            + residual
            + logits
        )
        copies = 2 * (arch.body_params // arch.layers + arch.vocab * arch.hidden) if c == 2 else 0
    if kv_cache:
        activations += 2 * arch.layers * batch * seq_len * arch.kv_dim * c
    state = OPTIMIZER_BYTES[optimizer]
    return MemoryEstimate(
        weights=arch.params * weight_bytes,
        gradients=4 * count,
        optimizer_states=state * count,
        weight_copies=copies,
        activations=int(activations),
        logits=int(logits),
        step_scratch=4 * count if state else 0,
    )


# Sustained FLOP/s of a training loop like the book's (small batches, HF models, autocast). These are
# assumptions, not measurements: about 35–40% of the tensor-core peak on GPUs (T4 fp16: 65 TFLOP/s
# peak → 25; A100 bf16: 312 → 120; L4 bf16: 121 → 45; H100 bf16: 990 → 350) and 8–10% of fp32 peak
# without tensor cores; the CPU rows follow SmolLM2-135M's forward timed on 2 cores (fp32; bf16 with AMX).
THROUGHPUT: dict[tuple[str, str], float] = {
    ("t4", "fp16"): 25e12,
    ("t4", "no"): 0.7e12,
    ("l4", "bf16"): 45e12,
    ("l4", "fp16"): 45e12,
    ("l4", "no"): 2.5e12,
    ("a100", "bf16"): 120e12,
    ("a100", "fp16"): 120e12,
    ("a100", "no"): 15e12,  # fp32 through TF32
    ("h100", "bf16"): 350e12,
    ("h100", "fp16"): 350e12,
    ("h100", "no"): 40e12,
    ("cpu", "no"): 0.2e12,
    ("cpu", "bf16"): 0.45e12,
}
# Seconds per optimiser step (or per forward batch) that FLOPs do not explain: kernel launches,
# the optimizer's passes, Python. An allowance, not a measurement.
STEP_OVERHEAD_S = {"t4": 0.05, "l4": 0.04, "a100": 0.03, "h100": 0.03, "cpu": 0.0}

_PASSES = {"all": 3, "prompt": 2, "head": 1, "none": 1}  # forward = 1; each backward pass ≈ 1 more


def training_flops(
    arch: Architecture,
    trainable: str | tuple[str, int],
    tokens: int,
    seq_len: int,
    logits_kept: int | None = None,
) -> float:
    """FLOPs of ``tokens`` tokens: 2·N_body per token forward (+ attention ``4·L·s·h`` per token, + the
    LM head ``2·V·h`` per kept position), times 3 with weight gradients (6·N), 2 with gradients to the
    input only (4·N), 1 forward-only (2·N). ``logits_kept``: LM-head positions over all ``tokens``."""
    mode, _ = _trainable(arch, trainable)
    forward = 2 * arch.body_params * tokens + 4 * arch.layers * seq_len * arch.hidden * tokens
    forward += 2 * arch.vocab * arch.hidden * (logits_kept or 0)
    return _PASSES[mode] * forward


def estimate_seconds(
    arch: Architecture,
    trainable: str | tuple[str, int],
    batch: int,
    seq_len: int,
    steps: int,
    device: str,
    precision: str,
    *,
    logits_kept: int | None = None,
    computed_len: int | None = None,
) -> float:
    """Seconds for ``steps`` steps of ``(batch, seq_len)`` on ``device`` (a ``THROUGHPUT`` kind).

    ``logits_kept``: LM-head positions per step (default one per row); ``computed_len``: tokens a row
    runs through the layers when the others come from a cache.
    """
    if (device, precision) not in THROUGHPUT:
        raise InputError(
            f"no throughput assumed for {device!r} in {precision!r}; known: {sorted(THROUGHPUT)}"
        )
    kept = batch if logits_kept is None else logits_kept
    tokens = batch * (computed_len or seq_len) * steps
    flops = training_flops(arch, trainable, tokens, seq_len, kept * steps)
    return flops / THROUGHPUT[(device, precision)] + STEP_OVERHEAD_S[device] * steps
