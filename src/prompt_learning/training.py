"""One small train / evaluate loop for every chapter.

A *method* is an ``nn.Module`` that maps a list of texts to class logits ``(B, C)`` (the
default loss is cross-entropy on them), or any module with a custom ``loss_fn(method, batch)``.
The loop is seeded and deterministic on CPU, shows ``tqdm.auto`` progress, and leaves device
placement, mixed precision and several processes to 🤗 ``accelerate``: the same code runs on a
laptop, a Colab GPU, or ``accelerate launch --num_processes N``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class History:
    """What happened during :func:`fit`, for plots: one row per step, one per evaluation."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0  # wall-clock time of the training steps (evaluations excluded)

    @property
    def final_loss(self) -> float:
        return float(np.mean(self.loss[-5:])) if self.loss else float("nan")


def collate(rows: list[dict]) -> dict:
    """Rows of a ``Dataset`` → one batch: lists for text columns, a tensor for ``label``."""
    batch = {key: [r[key] for r in rows] for key in rows[0]}
    if "label" in batch:
        batch["label"] = torch.tensor(batch["label"], dtype=torch.long)
    return batch


def classification_loss(method: nn.Module, batch: dict) -> torch.Tensor:
    logits = method(batch["text"])  # (B, C)
    return F.cross_entropy(logits, batch["label"].to(logits.device))


def _order(n: int, total: int, seed: int) -> list[int]:
    """Indices for ``total`` draws: shuffled epochs over ``n`` examples, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    while len(out) < total:
        out += rng.permutation(n).tolist()
    return out[:total]


@contextmanager
def _deterministic(on: bool) -> Iterator[None]:
    """Deterministic kernels while training on a CPU: a run is then a function of its seeds, bit for bit
    (some backward kernels otherwise sum in thread order, and Adam amplifies the last bits)."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if on:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def fit(method: nn.Module, train: Dataset, *, steps: int, lr: float, batch_size: int, seed: int = 0,
        loss_fn: Callable[[nn.Module, dict], torch.Tensor] = classification_loss,
        eval_data: Dataset | None = None, eval_every: int = 0, weight_decay: float = 0.0,
        max_grad_norm: float | None = 1.0, warmup: float = 0.0, mixed_precision: str = "no",
        progress: bool = True, accelerator: Accelerator | None = None) -> History:
    """Train the parameters of ``method`` that require grad for ``steps`` AdamW steps.

    Batches are drawn from ``train`` in seeded shuffled epochs. With several processes (under
    ``accelerate launch``) each process takes its own ``batch_size`` rows per step and the
    gradients are averaged. ``warmup`` is the fraction of steps with a linearly rising rate,
    after which it decays linearly to zero (0 disables the schedule).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    set_seed(seed)
    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision)
    params = [p for p in method.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the method has no trainable parameters (every parameter has requires_grad=False)")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warm = int(warmup * steps)
    schedule = (lambda s: min(1.0, (s + 1) / max(1, warm)) * max(0.0, (steps - s) / max(1, steps - warm))) \
        if warmup > 0 else (lambda s: 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    order = _order(len(train), steps * batch_size * acc.num_processes, seed)
    loader = DataLoader(train, batch_size=batch_size, sampler=order, collate_fn=collate)
    model, opt, loader, sched = acc.prepare(method, opt, loader, sched)
    hist = History()
    with _deterministic(acc.device.type == "cpu"):
        model.train()
        bar = tqdm(total=steps, desc="train", disable=not progress or not acc.is_local_main_process, leave=False)
        started = time.perf_counter()
        for step, batch in enumerate(loader, start=1):
            with acc.autocast():
                loss = loss_fn(model, batch)
            acc.backward(loss)
            if max_grad_norm is not None:
                acc.clip_grad_norm_(params, max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            hist.step.append(step)
            hist.loss.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if eval_data is not None and eval_every and (step % eval_every == 0 or step == steps):
                hist.seconds += time.perf_counter() - started
                hist.eval_step.append(step)
                hist.eval_accuracy.append(evaluate(acc.unwrap_model(model), eval_data, batch_size)["accuracy"])
                model.train()
                started = time.perf_counter()
    hist.seconds += time.perf_counter() - started
    bar.close()
    model.eval()
    return hist


@torch.no_grad()
def predict(method: nn.Module, data: Dataset, batch_size: int = 16) -> torch.Tensor:
    """Class logits ``(N, C)`` of ``method`` on the ``text`` column of ``data``."""
    with eval_mode(method):
        out = [method(data[i:i + batch_size]["text"]).float().cpu() for i in range(0, len(data), batch_size)]
    return torch.cat(out)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module.eval()`` inside; afterwards every submodule gets back its *own* mode.

    (``module.train(was_training)`` would switch a frozen backbone's dropout on.)
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def evaluate(method: nn.Module, data: Dataset, batch_size: int = 16) -> dict:
    """Accuracy of ``method`` on ``data`` with its predictions and logits."""
    logits = predict(method, data, batch_size)
    pred = logits.argmax(-1)
    labels = torch.tensor(data["label"])
    return {"accuracy": (pred == labels).float().mean().item(), "predictions": pred, "logits": logits}
