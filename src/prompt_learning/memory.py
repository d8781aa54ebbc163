"""Memory and time of a training run, estimated from the architecture alone (no hub, no GPU needed).

:func:`estimate_training_memory` adds up the peak of one training step, in bytes:

* **weights** — every parameter, fp32 under the book's precision rule (4 bytes; 2 if loaded in 16-bit);
* **gradients** and **optimizer states** — for the trainable parameters only: an fp32 gradient
  (4 bytes) and AdamW's two moments (8 bytes). Full fine-tuning in fp32 with AdamW costs 16 bytes a
  parameter before any activation: 27.4 GB for SmolLM2-1.7B;
* **weight copies** — under autocast every matmul reads a 16-bit copy of its fp32 weight; when the
  backward runs through the backbone those copies are kept for it (2 bytes a parameter);
* **activations** — what the forward keeps for the backward (:func:`layer_activation_bytes`, after
  Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", §4.1),
  plus the **logits** the loss reads; for a forward without backward, one layer's working set;
* **step scratch** — AdamW (foreach) makes one fp32 tensor the size of the trainable parameters
  during ``step()``, after the activations are freed: the peak is the larger of the two.

:func:`estimate_seconds` turns FLOPs (2·N per token forward, 4·N with gradients to the input, 6·N
with weight gradients; Kaplan et al. 2020) into seconds at an assumed sustained throughput
(:data:`THROUGHPUT`). The CUDA context (0.3–0.5 GB) and allocator fragmentation are not counted:
keep ~1 GB of a card free. :data:`CHAPTER_RUNS` lists each chapter's training runs at the sizes of
the ``t4`` and ``gpu`` profiles; ``python -m prompt_learning.memory`` prints the per-chapter table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .profiles import PROFILES

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
    return Architecture(name, hidden, layers, heads, kv_heads, intermediate, 49152, params,
                        gated_mlp=True, rms_norm=True, dropout=False)


# Public configs (config.json of each repository); parameter counts of the transformers classes the
# book loads them with (LlamaForCausalLM, RobertaForMaskedLM, BertForMaskedLM, BertModel), checked
# against transformers' configs on the meta device in tests/unit/test_memory.py.
ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    _llama("HuggingFaceTB/SmolLM2-1.7B-Instruct", 2048, 24, 32, 32, 8192, 1_711_376_384),
    _llama("HuggingFaceTB/SmolLM2-360M-Instruct", 960, 32, 15, 5, 2560, 361_821_120),
    _llama("HuggingFaceTB/SmolLM2-135M-Instruct", 576, 30, 9, 3, 1536, 134_515_008),
    _llama("smollm2-135m", 576, 30, 9, 3, 1536, 134_515_008),  # the embedded copy of the same model
    Architecture("roberta-large", 1024, 24, 16, 16, 4096, 50265, 355_412_057),
    Architecture("roberta-base", 768, 12, 12, 12, 3072, 50265, 124_697_433),
    Architecture("bert-base-chinese", 768, 12, 12, 12, 3072, 21128, 102_290_312),
    Architecture("minilm-l6", 384, 6, 12, 12, 1536, 30522, 22_713_216),
)}

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
        return (self.weights + self.gradients + self.optimizer_states
                + max(self.weight_copies + self.activations, self.step_scratch))

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
    raise ValueError("trainable must be 'all', 'none', 'head', ('head', n) or ('prompt', n), "
                     f"got {trainable!r}")


def _compute_bytes(precision: str) -> int:
    if precision not in ("no", "fp16", "bf16"):
        raise ValueError("precision must be resolved to 'no', 'fp16' or 'bf16' "
                         f"(precision.resolve_precision), got {precision!r}")
    return 4 if precision == "no" else 2


def layer_activation_bytes(arch: Architecture, batch: int, seq_len: int, precision: str,
                           backward: str = "all", fused_attention: bool = True) -> int:
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
        raise ValueError(f"backward must be 'all' or 'input', got {backward!r}")
    per_token = norms + attention + mlp + (2 if arch.dropout else 0)
    out = batch * seq_len * arch.hidden * per_token
    if not fused_attention:  # the attention matrix: softmax output (+ dropout mask and output)
        out += arch.heads * seq_len * seq_len * batch * (c + (1 + c if arch.dropout else 0))
    return int(out)


def estimate_training_memory(arch: Architecture, trainable: str | tuple[str, int], batch: int, seq_len: int,
                             precision: str, optimizer: str = "adamw", *, logits_kept: int | None = None,
                             computed_len: int | None = None, kv_cache: bool = False, weight_bytes: int = 4,
                             fused_attention: bool = True) -> MemoryEstimate:
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
        raise ValueError(f"optimizer must be one of {list(OPTIMIZER_BYTES)}, got {optimizer!r}")
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
        activations = layer_activation_bytes(arch, batch, rows_len, precision, "all", fused_attention) \
            + residual + logits
        copies = 2 * (arch.body_params // arch.layers + arch.vocab * arch.hidden) if c == 2 else 0
    if kv_cache:
        activations += 2 * arch.layers * batch * seq_len * arch.kv_dim * c
    state = OPTIMIZER_BYTES[optimizer]
    return MemoryEstimate(weights=arch.params * weight_bytes, gradients=4 * count,
                          optimizer_states=state * count, weight_copies=copies, activations=int(activations),
                          logits=int(logits), step_scratch=4 * count if state else 0)


# Sustained FLOP/s of a training loop like the book's (small batches, HF models, autocast). These are
# assumptions, not measurements: about 35–40% of the tensor-core peak on GPUs (T4 fp16: 65 TFLOP/s
# peak → 25; A100 bf16: 312 → 120; L4 bf16: 121 → 45; H100 bf16: 990 → 350) and 8–10% of fp32 peak
# without tensor cores; the CPU rows follow SmolLM2-135M's forward timed on 2 cores (fp32; bf16 with AMX).
THROUGHPUT: dict[tuple[str, str], float] = {
    ("t4", "fp16"): 25e12, ("t4", "no"): 0.7e12,
    ("l4", "bf16"): 45e12, ("l4", "fp16"): 45e12, ("l4", "no"): 2.5e12,
    ("a100", "bf16"): 120e12, ("a100", "fp16"): 120e12, ("a100", "no"): 15e12,  # fp32 through TF32
    ("h100", "bf16"): 350e12, ("h100", "fp16"): 350e12, ("h100", "no"): 40e12,
    ("cpu", "no"): 0.2e12, ("cpu", "bf16"): 0.45e12,
}
# Seconds per optimiser step (or per forward batch) that FLOPs do not explain: kernel launches,
# the optimizer's passes, Python. An allowance, not a measurement.
STEP_OVERHEAD_S = {"t4": 0.05, "l4": 0.04, "a100": 0.03, "h100": 0.03, "cpu": 0.0}

_PASSES = {"all": 3, "prompt": 2, "head": 1, "none": 1}  # forward = 1; each backward pass ≈ 1 more


def training_flops(arch: Architecture, trainable: str | tuple[str, int], tokens: int, seq_len: int,
                   logits_kept: int | None = None) -> float:
    """FLOPs of ``tokens`` tokens: 2·N_body per token forward (+ attention ``4·L·s·h`` per token, + the
    LM head ``2·V·h`` per kept position), times 3 with weight gradients (6·N), 2 with gradients to the
    input only (4·N), 1 forward-only (2·N). ``logits_kept``: LM-head positions over all ``tokens``."""
    mode, _ = _trainable(arch, trainable)
    forward = 2 * arch.body_params * tokens + 4 * arch.layers * seq_len * arch.hidden * tokens
    forward += 2 * arch.vocab * arch.hidden * (logits_kept or 0)
    return _PASSES[mode] * forward


def estimate_seconds(arch: Architecture, trainable: str | tuple[str, int], batch: int, seq_len: int,
                     steps: int, device: str, precision: str, *, logits_kept: int | None = None,
                     computed_len: int | None = None) -> float:
    """Seconds for ``steps`` steps of ``(batch, seq_len)`` on ``device`` (a :data:`THROUGHPUT` kind).

    ``logits_kept``: LM-head positions per step (default one per row); ``computed_len``: tokens a row
    runs through the layers when the others come from a cache.
    """
    if (device, precision) not in THROUGHPUT:
        raise ValueError(f"no throughput assumed for {device!r} in {precision!r}; "
                         f"known: {sorted(THROUGHPUT)}")
    kept = batch if logits_kept is None else logits_kept
    tokens = batch * (computed_len or seq_len) * steps
    flops = training_flops(arch, trainable, tokens, seq_len, kept * steps)
    return flops / THROUGHPUT[(device, precision)] + STEP_OVERHEAD_S[device] * steps


# ---------------------------------------------------------------------------------------------
# Each chapter's runs at a profile's sizes (the "gpu" rows of the chapters' size tables)


@dataclass(frozen=True)
class Run:
    """One kind of run a chapter makes, at one profile's sizes, and how often it makes it."""

    chapter: int
    what: str
    backbone: str  # a key of ARCHITECTURES
    trainable: str | tuple[str, int]  # as for estimate_training_memory
    batch: int
    seq_len: int  # tokens per row, virtual tokens included
    steps: int  # optimiser steps per run (forward batches, or decoding steps, for trainable="none")
    runs: int = 1  # how often the chapter repeats it (shots × seeds × patterns …)
    logits_kept: int | None = None  # LM-head positions per step (None: one per row)
    computed_len: int | None = None  # tokens per row through the layers when the rest are cached
    kv_cache: bool = False
    also_loaded: tuple[str, ...] = ()  # other backbones held on the device meanwhile (fp32 weights)
    eval_rows: int = 0  # test rows scored (forward only) after each run

    def memory(self, precision: str) -> MemoryEstimate:
        return estimate_training_memory(ARCHITECTURES[self.backbone], self.trainable, self.batch,
                                        self.seq_len, precision, logits_kept=self.logits_kept,
                                        computed_len=self.computed_len, kv_cache=self.kv_cache)

    def peak_bytes(self, precision: str) -> int:
        """This run's peak plus the weights of the other backbones the chapter holds meanwhile."""
        return self.memory(precision).total + sum(4 * ARCHITECTURES[n].params for n in self.also_loaded)

    def seconds(self, device: str, precision: str) -> float:
        """All ``runs`` of it, evaluations included."""
        arch = ARCHITECTURES[self.backbone]
        one = estimate_seconds(arch, self.trainable, self.batch, self.seq_len, self.steps, device, precision,
                               logits_kept=self.logits_kept, computed_len=self.computed_len)
        if self.eval_rows:
            batches = math.ceil(self.eval_rows / 32)
            one += estimate_seconds(arch, "none", 32, self.seq_len, batches, device, precision)
        return self.runs * one


def lstm_encoder_params(hidden: int, n: int) -> int:
    """P-tuning's LSTM prompt encoder (2 bidirectional layers of ``hidden/2``, then a 2-layer MLP)."""
    d = hidden // 2
    lstm = 2 * 2 * (4 * d * (hidden + d) + 8 * d)  # 2 layers × 2 directions; the 2nd reads 2d = hidden
    return n * hidden + lstm + (2 * d * 2 * d + 2 * d) + (2 * d * hidden + hidden)


def prefix_width(arch: Architecture) -> int:
    """Numbers one virtual token adds to every layer's keys and values: ``2 · layers · kv_dim``."""
    return 2 * arch.layers * arch.kv_dim


def prefix_mlp_params(arch: Architecture, n: int, hidden: int = 512) -> int:
    """Prefix tuning's reparameterisation: ``(n, h)`` inputs → Linear(h, 512) → tanh → Linear(512, W)."""
    w = prefix_width(arch)
    return n * arch.hidden + arch.hidden * hidden + hidden + hidden * w + w


def chapter_runs(profile) -> list[Run]:
    """The runs of every chapter at ``profile``'s sizes (its ``sizes`` row must be ``"gpu"``).

    Read off the chapters' size tables and the methods each trains; a row's length is its
    ``max_length`` (texts are usually shorter: an upper bound) plus any virtual tokens.
    """
    if profile.sizes != "gpu":
        raise ValueError(f"CHAPTER_RUNS follows the chapters' 'gpu' rows; profile {profile.name!r} uses "
                         f"the {profile.sizes!r} row")
    p, B, L = profile, profile.batch_size, profile.max_length
    lm, enc = p.causal_lm, p.encoder
    cloze = p.masked_lm if p.hub else p.causal_lm  # PET's backbone in chapters 2 and 3
    enc2 = p.masked_lm if p.hub else p.encoder  # chapter 2's encoder
    h = ARCHITECTURES[lm].hidden
    kmax, grid = max(p.icl_shots), len(p.shots) * len(p.seeds)
    aux = 4  # PETLoss's unlabelled rows per step (alpha > 0): an MLM / next-token loss on every position
    runs = [
        Run(1, f"in-context learning, k = {kmax} (no training)", lm, "none", 16, 64 * (kmax + 2),
            math.ceil(p.n_eval / 16), runs=len(p.seeds), computed_len=64, kv_cache=True),
        Run(2, "PET (all weights) + auxiliary LM loss, movie reviews", cloze, "all", B + aux, 64, p.steps,
            runs=grid, logits_kept=B + aux * 64, also_loaded=(lm, cloze), eval_rows=p.n_eval),
        Run(2, "classifier head + encoder fine-tuning, movie reviews", enc2, "all", B, 64, p.steps, runs=grid,
            logits_kept=0, also_loaded=(lm, cloze), eval_rows=p.n_eval),
        Run(2, "PET + auxiliary loss, BBC topics", cloze, "all", B + aux, L, p.steps, runs=2 * len(p.seeds),
            logits_kept=B + aux * L, also_loaded=(lm, cloze, cloze), eval_rows=500),
        Run(2, "classifier head + encoder, BBC topics", enc2, "all", B, L, p.steps, runs=2 * len(p.seeds),
            logits_kept=0, also_loaded=(lm, cloze, cloze), eval_rows=500),
        Run(2, "pattern ensemble: PET on the other two patterns", cloze, "all", B + aux, 64, p.steps,
            runs=2, logits_kept=B + aux * 64, also_loaded=(lm, cloze, cloze, cloze), eval_rows=p.n_eval),
        Run(2, "distilled student (encoder fine-tuning)", enc2, "all", B, 64, 500, logits_kept=0,
            also_loaded=(lm, cloze, cloze, cloze), eval_rows=2000 * 3 + p.n_eval),
    ]
    if p.hub and p.chinese_mlm:  # chapter 2's last section; the ensemble is gone, the student stays
        runs.append(Run(2, "PET + auxiliary loss, Chinese reviews", p.chinese_mlm, "all", B + aux, L, p.steps,
                        runs=grid, logits_kept=B + aux * L, also_loaded=(lm, cloze, enc2, p.chinese_mlm),
                        eval_rows=p.n_eval))
    runs += [
        Run(3, "zero-shot grid, 8 templates (no training)", cloze, "none", 64, 64, math.ceil(1003 / 64),
            runs=8),
        Run(3, "PET (all weights) per template", cloze, "all", B, 64, p.steps, runs=8, also_loaded=(cloze,),
            eval_rows=1000),
        Run(3, "prompt tuning, 20 soft tokens", lm, ("prompt", 20 * h), 16, 128 + 20, 150,
            also_loaded=(cloze,) if p.hub else (), eval_rows=1000 + 8 * 1032),
        Run(4, "prompt tuning sweep, the longest prompt (50 tokens)", lm, ("prompt", 50 * h), 16, 128 + 50,
            100, runs=3, eval_rows=1000),
        Run(4, "prompt tuning sweep, the other points (≤ 20 tokens)", lm, ("prompt", 20 * h), 16, 128 + 20,
            100, runs=30, eval_rows=1000),
        Run(5, "P-tuning, LSTM encoder (stability and anchors)", lm, ("prompt", lstm_encoder_params(h, 6)),
            16, 128 + 12, 100, runs=10, eval_rows=1000),
        Run(5, "P-tuning, MLP encoder and free vectors", lm, ("prompt", 3 * h * h), 16, 128 + 12, 100,
            runs=10, eval_rows=1000),
    ]
    a = ARCHITECTURES[lm]
    virtual = 10 * prefix_width(a) // a.hidden  # chapter 6: prompt tuning with prefix tuning's budget
    source = 400 + 30  # 400 body tokens + template + headline
    runs += [
        Run(6, f"prompt tuning, {virtual} soft tokens (the prefix's budget)", lm, ("prompt", virtual * h), 16,
            source + virtual, 300, logits_kept=16 * 24),
        Run(6, "prefix tuning through the MLP (10 tokens)", lm, ("prompt", prefix_mlp_params(a, 10)), 16,
            source + 10, 300, logits_kept=16 * 24),
        Run(6, "prefix tuning, direct table (words / random start)", lm, ("prompt", 10 * prefix_width(a)), 16,
            source + 10, 300, runs=2, logits_kept=16 * 24),
        Run(6, "greedy headlines, 250 articles × 5 methods (no training)", lm, "none", 8, source + 32,
            32 * 32, runs=5, computed_len=math.ceil((source + 32) / 32), kv_cache=True),
    ]
    e = ARCHITECTURES[enc]

    def v2(n: int) -> int:  # P-tuning v2: the per-layer table and a head
        return n * prefix_width(e) + 2 * e.hidden + 2

    runs += [
        Run(7, "full fine-tuning of the encoder (movie reviews, BBC)", enc, "all", 16, 128, 400, runs=2,
            logits_kept=0, also_loaded=(enc,), eval_rows=1000),
        Run(7, "P-tuning v2, 64 prompts per layer", enc, ("prompt", v2(64)), 16, 128, 400, logits_kept=0,
            eval_rows=1000),
        Run(7, "P-tuning v2 / shallow prompts and ablations (16 per layer)", enc, ("prompt", v2(16)), 16, 128,
            400, runs=10, logits_kept=0, eval_rows=1000),
        Run(7, "head only", enc, "head", 16, 128, 400, runs=2, logits_kept=0, eval_rows=1000),
    ]
    combos = 2 * 2 * 3  # two tasks × k ∈ {16, 64} × three seeds
    both = (lm, enc)  # the shared frozen backbones stay loaded
    runs += [
        Run(8, "PET: full fine-tuning of a fresh causal LM", lm, "all", B, L + 8, p.steps, runs=combos,
            also_loaded=both, eval_rows=p.n_eval),
        Run(8, "full fine-tuning of a fresh encoder", enc, "all", B, L, p.steps, runs=combos, logits_kept=0,
            also_loaded=both, eval_rows=p.n_eval),
        Run(8, "prompt tuning / P-tuning (LSTM) / prefix tuning, 16 tokens", lm,
            ("prompt", max(lstm_encoder_params(h, 16), 16 * prefix_width(a))), B, L + 16, p.steps,
            runs=3 * combos, also_loaded=(enc,), eval_rows=p.n_eval),
        Run(8, "P-tuning v2 and head only", enc, ("prompt", v2(16)), B, L, p.steps, runs=2 * combos,
            logits_kept=0, also_loaded=(lm,), eval_rows=p.n_eval),
        Run(8, "in-context learning, one demonstration per class (no training)", lm, "none", 32,
            5 * (L + 8) + L, math.ceil(p.n_eval / 32), runs=combos, computed_len=L, kv_cache=True,
            also_loaded=(enc,)),
    ]
    return runs


# the device (and precision) each GPU profile's times are estimated for
REFERENCE_DEVICE = {"t4": ("t4", "fp16"), "gpu": ("a100", "bf16")}


def chapter_table(profile, device: str | None = None, precision: str | None = None) -> list[dict]:
    """Per chapter: the run with the largest peak, its peak (GB) and time, and the chapter's total time."""
    device = device or REFERENCE_DEVICE[profile.name][0]
    precision = precision or REFERENCE_DEVICE[profile.name][1]
    rows = []
    runs = chapter_runs(profile)
    for chapter in sorted({r.chapter for r in runs}):
        mine = [r for r in runs if r.chapter == chapter]
        top = max(mine, key=lambda r: r.peak_bytes(precision))
        rows.append({"chapter": chapter, "largest run": top.what, "backbone": top.backbone,
                     "peak_gb": top.peak_bytes(precision) / GB,
                     "largest_min": top.seconds(device, precision) / 60,
                     "chapter_min": sum(r.seconds(device, precision) for r in mine) / 60})
    return rows


CHAPTER_RUNS: dict[str, list[Run]] = {name: chapter_runs(PROFILES[name]) for name in REFERENCE_DEVICE}


def main() -> None:
    for name, (device, precision) in REFERENCE_DEVICE.items():
        print(f"profile {name!r} on {device} ({precision}): peak GB, minutes of the largest run, "
              "of the chapter")
        for r in chapter_table(PROFILES[name]):
            print(f"  ch{r['chapter']}  {r['peak_gb']:6.1f} GB  {r['largest_min']:6.1f} min  "
                  f"{r['chapter_min']:6.1f} min  {r['largest run']} [{r['backbone']}]")


if __name__ == "__main__":
    main()
