"""Each chapter's training runs at a GPU profile's sizes, and whether they fit the GPU it is for.

:func:`chapter_runs` lists every chapter's runs at the sizes of a ``t4`` or ``gpu`` profile (read
off the chapters' size tables and the methods each trains); :func:`chapter_table` gives, per
chapter, the run with the largest estimated peak memory (:mod:`prompt_learning.memory`) and the
chapter's estimated time. ``python -m prompt_learning.profiles`` prints the tables. The module takes
profiles as arguments and imports none: :mod:`prompt_learning.profiles` builds on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .errors import InputError
from .kv_prefix import AttentionSlot
from .memory import (
    ARCHITECTURES,
    GB,
    Architecture,
    MemoryEstimate,
    estimate_seconds,
    estimate_training_memory,
)
from .p_tuning import PromptEncoder, PromptEncoderType
from .prefix_tuning import PrefixEncoder


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
        return estimate_training_memory(
            ARCHITECTURES[self.backbone],
            self.trainable,
            self.batch,
            self.seq_len,
            precision,
            logits_kept=self.logits_kept,
            computed_len=self.computed_len,
            kv_cache=self.kv_cache,
        )

    def peak_bytes(self, precision: str) -> int:
        """This run's peak plus the weights of the other backbones the chapter holds meanwhile."""
        return self.memory(precision).total + sum(4 * ARCHITECTURES[n].params for n in self.also_loaded)

    def seconds(self, device: str, precision: str) -> float:
        """All ``runs`` of it, evaluations included."""
        arch = ARCHITECTURES[self.backbone]
        one = estimate_seconds(
            arch,
            self.trainable,
            self.batch,
            self.seq_len,
            self.steps,
            device,
            precision,
            logits_kept=self.logits_kept,
            computed_len=self.computed_len,
        )
        if self.eval_rows:
            batches = math.ceil(self.eval_rows / 32)
            one += estimate_seconds(arch, "none", 32, self.seq_len, batches, device, precision)
        return self.runs * one


def count_parameters(build: Callable[[], nn.Module]) -> int:
    """Parameters of the module ``build()`` makes, built on the meta device: no memory, no time."""
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def lstm_encoder_params(hidden: int, n: int) -> int:
    """P-tuning's LSTM prompt encoder for ``n`` virtual tokens, counted from the library's own."""
    return count_parameters(lambda: PromptEncoder(n, hidden, PromptEncoderType.LSTM, hidden_size=hidden // 2))


def prefix_width(arch: Architecture) -> int:
    """Numbers one virtual token adds to every layer's keys and values: ``2 · layers · kv_dim``."""
    return 2 * arch.layers * arch.kv_dim


def prefix_mlp_params(arch: Architecture, n: int, hidden: int = 512) -> int:
    """Prefix tuning's reparameterisation (``(n, h)`` inputs → Linear(h, 512) → tanh → Linear(512, W)),
    counted from the library's own encoder for one prefix slot per layer of ``arch``."""
    slots = [AttentionSlot("decoder", "self", i, arch.kv_heads, arch.head_dim) for i in range(arch.layers)]
    return count_parameters(lambda: PrefixEncoder(slots, n, True, arch.hidden, hidden))


def lora_params(arch: Architecture, r: int) -> int:
    """LoRA of rank ``r`` on ``W_q`` and ``W_v`` of every layer, counted from PEFT's own layers on a
    Llama-shaped model of ``arch``'s sizes (built on the meta device)."""
    if not arch.gated_mlp:
        raise InputError(f"lora_params builds Llama-shaped models; {arch.name} is not one")
    from peft import LoraConfig, inject_adapter_in_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=arch.hidden,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads,
        intermediate_size=arch.intermediate,
        vocab_size=arch.vocab,
    )
    with torch.device("meta"):
        model = inject_adapter_in_model(
            LoraConfig(r=r, target_modules=["q_proj", "v_proj"]), LlamaForCausalLM(config)
        )
        return sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)


def chapter_runs(profile) -> list[Run]:
    """The runs of every chapter at ``profile``'s sizes (its ``sizes`` row must be ``"gpu"``).

    Read off the chapters' size tables and the methods each trains; a row's length is its
    ``max_length`` (texts are usually shorter: an upper bound) plus any virtual tokens.
    """
    if profile.sizes != "gpu":
        raise InputError(
            f"chapter_runs follows the chapters' 'gpu' rows; profile {profile.name!r} uses "
            f"the {profile.sizes!r} row"
        )
    p, B, L = profile, profile.batch_size, profile.max_length
    lm, enc = p.causal_lm, p.encoder
    cloze = p.masked_lm if p.hub else p.causal_lm  # PET's backbone in chapters 2 and 3
    enc2 = p.masked_lm if p.hub else p.encoder  # chapter 2's encoder
    h = ARCHITECTURES[lm].hidden
    kmax, grid = max(p.icl_shots), len(p.shots) * len(p.seeds)
    aux = 4  # PETLoss's unlabelled rows per step (alpha > 0): an MLM / next-token loss on every position
    runs = [
        Run(
            1,
            f"in-context learning, k = {kmax} (no training)",
            lm,
            "none",
            16,
            64 * (kmax + 2),
            math.ceil(p.n_eval / 16),
            runs=len(p.seeds),
            computed_len=64,
            kv_cache=True,
        ),
        Run(
            2,
            "PET (all weights) + auxiliary LM loss, movie reviews",
            cloze,
            "all",
            B + aux,
            64,
            p.steps,
            runs=grid,
            logits_kept=B + aux * 64,
            also_loaded=(lm, cloze),
            eval_rows=p.n_eval,
        ),
        Run(
            2,
            "classifier head + encoder fine-tuning, movie reviews",
            enc2,
            "all",
            B,
            64,
            p.steps,
            runs=grid,
            logits_kept=0,
            also_loaded=(lm, cloze),
            eval_rows=p.n_eval,
        ),
        Run(
            2,
            "classifier head on PET's own backbone, fully fine-tuned",
            cloze,
            "all",
            B,
            64,
            p.steps,
            runs=grid + 1,
            logits_kept=0,
            also_loaded=(lm, cloze),
            eval_rows=p.n_eval,
        ),
        Run(
            2,
            "classifier head on PET's own backbone, head only",
            cloze,
            "head",
            B,
            64,
            p.steps,
            runs=grid + 1,
            logits_kept=0,
            also_loaded=(lm,),
            eval_rows=p.n_eval,
        ),
        Run(
            2,
            "PET + auxiliary loss, BBC topics",
            cloze,
            "all",
            B + aux,
            L,
            p.steps,
            runs=2 * len(p.seeds),
            logits_kept=B + aux * L,
            also_loaded=(lm, cloze, cloze),
            eval_rows=500,
        ),
        Run(
            2,
            "classifier head + encoder, BBC topics",
            enc2,
            "all",
            B,
            L,
            p.steps,
            runs=2 * len(p.seeds),
            logits_kept=0,
            also_loaded=(lm, cloze, cloze),
            eval_rows=500,
        ),
        Run(
            2,
            "pattern ensemble: PET on the other two patterns",
            cloze,
            "all",
            B + aux,
            64,
            p.steps,
            runs=2,
            logits_kept=B + aux * 64,
            also_loaded=(lm, cloze, cloze, cloze),
            eval_rows=p.n_eval,
        ),
        Run(
            2,
            "distilled student (encoder fine-tuning)",
            enc2,
            "all",
            B,
            64,
            500,
            logits_kept=0,
            also_loaded=(lm, cloze, cloze, cloze),
            eval_rows=2000 * 3 + p.n_eval,
        ),
    ]
    if p.hub and p.chinese_mlm:  # chapter 2's last section; the ensemble is gone, the student stays
        runs.append(
            Run(
                2,
                "PET + auxiliary loss, Chinese reviews",
                p.chinese_mlm,
                "all",
                B + aux,
                L,
                p.steps,
                runs=grid,
                logits_kept=B + aux * L,
                also_loaded=(lm, cloze, enc2, p.chinese_mlm),
                eval_rows=p.n_eval,
            )
        )
    runs += [
        Run(
            3,
            "zero-shot grid, 8 templates (no training)",
            cloze,
            "none",
            64,
            64,
            math.ceil(1003 / 64),
            runs=8,
        ),
        Run(
            3,
            "PET (all weights) per template",
            cloze,
            "all",
            B,
            64,
            p.steps,
            runs=8,
            also_loaded=(cloze,),
            eval_rows=1000,
        ),
        Run(
            3,
            "prompt tuning, 20 soft tokens",
            lm,
            ("prompt", 20 * h),
            16,
            128 + 20,
            150,
            also_loaded=(cloze,) if p.hub else (),
            eval_rows=1000 + 8 * 1032,
        ),
        # chapter 4: label words and AutoPrompt on the causal LM; sizes from its "gpu" row
        Run(
            4,
            "test slot pass + label-word searches (no training)",
            lm,
            "none",
            64,
            64,
            math.ceil(1000 / 64) + len(p.seeds),
            runs=1,
        ),
        Run(
            4,
            "PET (all weights), hand-picked and found label words",
            lm,
            "all",
            B,
            64,
            p.steps,
            runs=2 * len(p.seeds),
            also_loaded=(lm,),
            eval_rows=1000,
        ),
        Run(
            4,
            "BBC: candidate phrases scored whole (no training)",
            lm,
            "none",
            64,
            L + 8,
            3 * math.ceil(80 / 64) + math.ceil(500 / 64) * 3,
            runs=len(p.seeds),
        ),
        Run(
            4,
            "AutoPrompt search: 60 steps × (a gradient + 20 candidates), batch 32",
            lm,
            ("prompt", 3 * h),
            32,
            64,
            60 * 21,
            runs=len(p.seeds),
            eval_rows=1000 + 8 * 1000 // len(p.seeds),
        ),
        Run(
            4,
            "PET on the found, the median and the best hand template",
            lm,
            "all",
            B,
            64,
            p.steps,
            runs=3,
            also_loaded=(lm,),
            eval_rows=1000,
        ),
        Run(
            5,
            "prompt tuning sweep, the longest prompt (50 tokens)",
            lm,
            ("prompt", 50 * h),
            16,
            128 + 50,
            100,
            runs=3,
            eval_rows=1000,
        ),
        Run(
            5,
            "prompt tuning sweep, the other points (≤ 20 tokens)",
            lm,
            ("prompt", 20 * h),
            16,
            128 + 20,
            100,
            runs=30,
            eval_rows=1000,
        ),
        Run(
            6,
            "P-tuning, LSTM encoder (stability and anchors)",
            lm,
            ("prompt", lstm_encoder_params(h, 6)),
            16,
            128 + 12,
            100,
            runs=10,
            eval_rows=1000,
        ),
        Run(
            6,
            "P-tuning, MLP encoder and free vectors",
            lm,
            ("prompt", 3 * h * h),
            16,
            128 + 12,
            100,
            runs=10,
            eval_rows=1000,
        ),
    ]
    a = ARCHITECTURES[lm]
    virtual = 10 * prefix_width(a) // a.hidden  # chapter 7: prompt tuning with prefix tuning's budget
    source = 400 + 30  # 400 body tokens + template + headline
    runs += [
        Run(
            7,
            f"prompt tuning, {virtual} soft tokens (the prefix's budget)",
            lm,
            ("prompt", virtual * h),
            16,
            source + virtual,
            300,
            logits_kept=16 * 24,
        ),
        Run(
            7,
            "prefix tuning through the MLP (10 tokens)",
            lm,
            ("prompt", prefix_mlp_params(a, 10)),
            16,
            source + 10,
            300,
            logits_kept=16 * 24,
        ),
        Run(
            7,
            "prefix tuning, direct table (words / random start)",
            lm,
            ("prompt", 10 * prefix_width(a)),
            16,
            source + 10,
            300,
            runs=2,
            logits_kept=16 * 24,
        ),
        Run(
            7,
            "greedy headlines, 250 articles × 5 methods (no training)",
            lm,
            "none",
            8,
            source + 32,
            32 * 32,
            runs=5,
            computed_len=math.ceil((source + 32) / 32),
            kv_cache=True,
        ),
    ]
    e = ARCHITECTURES[enc]

    def v2(n: int) -> int:  # P-tuning v2: the per-layer table and a head
        return n * prefix_width(e) + 2 * e.hidden + 2

    runs += [
        Run(
            8,
            "full fine-tuning of the encoder (movie reviews, BBC)",
            enc,
            "all",
            16,
            128,
            400,
            runs=2,
            logits_kept=0,
            also_loaded=(enc,),
            eval_rows=1000,
        ),
        Run(
            8,
            "P-tuning v2, 64 prompts per layer",
            enc,
            ("prompt", v2(64)),
            16,
            128,
            400,
            logits_kept=0,
            eval_rows=1000,
        ),
        Run(
            8,
            "P-tuning v2 / shallow prompts and ablations (16 per layer)",
            enc,
            ("prompt", v2(16)),
            16,
            128,
            400,
            runs=10,
            logits_kept=0,
            eval_rows=1000,
        ),
        Run(8, "head only", enc, "head", 16, 128, 400, runs=2, logits_kept=0, eval_rows=1000),
    ]
    shots = [k for k in (16, 64) if k in p.shots] or [16]  # chapter 9's gpu row reads these from the profile
    combos = 2 * len(shots) * min(3, len(p.seeds))  # two tasks × k × at most three seeds
    both = (lm, enc)  # the shared frozen backbones stay loaded
    runs += [
        Run(
            9,
            "PET: full fine-tuning of a fresh causal LM",
            lm,
            "all",
            B,
            L + 8,
            p.steps,
            runs=combos,
            also_loaded=both,
            eval_rows=p.n_eval,
        ),
        Run(
            9,
            "full fine-tuning of a fresh encoder",
            enc,
            "all",
            B,
            L,
            p.steps,
            runs=combos,
            logits_kept=0,
            also_loaded=both,
            eval_rows=p.n_eval,
        ),
        Run(
            9,
            "prompt tuning / P-tuning (LSTM) / prefix tuning, 16 tokens",
            lm,
            ("prompt", max(lstm_encoder_params(h, 16), 16 * prefix_width(a))),
            B,
            L + 16,
            p.steps,
            runs=3 * combos,
            also_loaded=(enc,),
            eval_rows=p.n_eval,
        ),
        Run(
            9,
            "LoRA, rank 8 on W_q and W_v (PEFT)",
            lm,
            ("prompt", lora_params(a, 8)),
            B,
            L + 8,
            p.steps,
            runs=combos,
            also_loaded=both,
            eval_rows=p.n_eval,
        ),
        Run(
            9,
            "P-tuning v2 and head only",
            enc,
            ("prompt", v2(16)),
            B,
            L,
            p.steps,
            runs=2 * combos,
            logits_kept=0,
            also_loaded=(lm,),
            eval_rows=p.n_eval,
        ),
        Run(
            9,
            "in-context learning, one demonstration per class (no training)",
            lm,
            "none",
            32,
            5 * (L + 8) + L,
            math.ceil(p.n_eval / 32),
            runs=combos,
            computed_len=L,
            kv_cache=True,
            also_loaded=(enc,),
        ),
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
        rows.append(
            {
                "chapter": chapter,
                "largest run": top.what,
                "backbone": top.backbone,
                "peak_gb": top.peak_bytes(precision) / GB,
                "largest_min": top.seconds(device, precision) / 60,
                "chapter_min": sum(r.seconds(device, precision) for r in mine) / 60,
            }
        )
    return rows
