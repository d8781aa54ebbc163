"""One small train / evaluate loop for every chapter.

A *method* is an ``nn.Module`` that maps a list of texts to class logits ``(B, C)`` (the
default loss is cross-entropy on them), or any module with a custom ``loss_fn(method, batch)``.
The loop is seeded and deterministic on CPU and shows ``tqdm.auto`` progress. The method is
trained where its backbone was placed (:func:`~prompt_learning.backbones.load_backbone` places it
once); mixed precision is ``torch.autocast`` chosen per call by :mod:`prompt_learning.precision`
(``"auto"`` follows the hardware; fp16 gets a loss scaler), so two calls in one process may use two
precisions. Several processes (``accelerate launch --num_processes N``) are 🤗 ``accelerate``'s
job: pass one ``Accelerator`` made once per process.

Before any compute the data are checked against the method (:func:`~prompt_learning.method.check_dataset`):
an empty dataset, class names in another order than the method's labels, labels out of range.
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

from .errors import InputError
from .method import check_dataset
from .precision import autocast, frozen_weights_cast, grad_scaler, one_device, resolve_precision


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
    eval_correct: list[np.ndarray] = field(default_factory=list)  # (N,) per evaluation: paired tests
    seconds: float = 0.0  # wall-clock time of the training steps (evaluations excluded)
    precision: str = "no"  # the mixed precision the steps ran in

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
    """Cross-entropy of the class logits ``(B, C)`` (computed in fp32) against ``label``."""
    texts = {c: batch[c] for c in ("text_a", "text_b") if c in batch} or batch["text"]
    logits = method(texts)  # (B, C)
    return F.cross_entropy(logits.float(), batch["label"].to(logits.device))


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
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if on:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def linear_schedule(steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor at each step (0-based): rises linearly to 1 over ``warmup·steps`` steps,
    then falls linearly to 0 after the last step; never above 1. ``warmup=0``: a constant 1."""
    if not 0.0 <= warmup < 1.0:
        raise InputError(
            f"warmup is the fraction of steps spent warming up and must be in [0, 1), got {warmup}"
        )
    if warmup == 0:
        return lambda s: 1.0
    warm = max(1, int(warmup * steps))
    return lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm))


def fused_adamw(params: list[torch.Tensor]) -> bool:
    """Whether PyTorch's fused AdamW kernel can take ``params``: float tensors on one CPU or CUDA device.

    The same update as the default implementation, to float rounding, in one kernel per step
    instead of a loop of elementwise ops; ``benchmarks/optimizer_step.py`` measures both on
    SmolLM2-135M's shapes (``benchmarks/results/optimizer_step.json``). It matters where every
    weight trains (PET, full fine-tuning); prompts and heads are too small for it to show.
    """
    devices = {p.device for p in params}
    return (
        len(devices) == 1
        and next(iter(devices)).type in ("cpu", "cuda")
        and all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in params)
    )


def fit(
    method: nn.Module,
    train: Dataset,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
    loss_fn: Callable[[nn.Module, dict], torch.Tensor] = classification_loss,
    eval_data: Dataset | None = None,
    eval_every: int = 0,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 1.0,
    warmup: float = 0.0,
    mixed_precision: str = "auto",
    progress: bool = True,
    accelerator: Accelerator | None = None,
) -> History:
    """Train the parameters of ``method`` that require grad for ``steps`` AdamW steps.

    Batches are drawn from ``train`` in seeded shuffled epochs. ``mixed_precision`` is ``"auto"``
    (bf16 on a GPU that has it, fp16 with loss scaling on one that does not, fp32 on a CPU),
    ``"no"``, ``"bf16"`` or ``"fp16"``; trainable tensors stay fp32 either way. With an
    ``accelerator`` (several processes under ``accelerate launch``) each process takes its own
    ``batch_size`` rows per step and the gradients are averaged. ``warmup`` is the fraction of
    steps with a linearly rising rate (:func:`linear_schedule`).
    """
    if steps < 1 or batch_size < 1:
        raise InputError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    if lr <= 0:
        raise InputError(f"lr must be positive, got {lr}")
    schedule = linear_schedule(steps, warmup)
    check_dataset(method, train)
    if eval_data is not None:
        check_dataset(method, eval_data)
    params = [p for p in method.parameters() if p.requires_grad]
    if not params:
        raise InputError("the method has no trainable parameters (every parameter has requires_grad=False)")
    device = accelerator.device if accelerator is not None else one_device(method)
    precision = resolve_precision(mixed_precision, device)
    set_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused_adamw(params) or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    processes = accelerator.num_processes if accelerator is not None else 1
    order = _order(len(train), steps * batch_size * processes, seed)
    loader = DataLoader(train, batch_size=batch_size, sampler=order, collate_fn=collate)
    model = method
    if accelerator is not None:
        model, opt, loader, sched = accelerator.prepare(method, opt, loader, sched)
    scaler = grad_scaler(device, precision)
    main = accelerator is None or accelerator.is_local_main_process
    hist = History()
    with _deterministic(device.type == "cpu"), frozen_weights_cast(method, device, precision):
        model.train()
        bar = tqdm(total=steps, desc="train", disable=not progress or not main, leave=False)
        started = time.perf_counter()
        for step, batch in enumerate(loader, start=1):
            with autocast(device, precision):
                loss = loss_fn(model, batch)
            if accelerator is not None:
                accelerator.backward(scaler.scale(loss))
            else:
                scaler.scale(loss).backward()
            scaler.unscale_(opt)
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            scaler.step(opt)
            scaler.update()
            sched.step()
            opt.zero_grad(set_to_none=True)
            hist.step.append(step)
            hist.loss.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if eval_data is not None and eval_every and (step % eval_every == 0 or step == steps):
                hist.seconds += time.perf_counter() - started
                hist.eval_step.append(step)
                inner = accelerator.unwrap_model(model) if accelerator is not None else model
                result = evaluate(inner, eval_data, batch_size, precision)
                hist.eval_accuracy.append(result["accuracy"])
                hist.eval_correct.append(result["correct"])
                model.train()
                started = time.perf_counter()
    hist.seconds += time.perf_counter() - started
    bar.close()
    model.eval()
    hist.precision = precision
    return hist


@torch.no_grad()
def predict(
    method: nn.Module, data: Dataset, batch_size: int = 16, mixed_precision: str = "auto"
) -> torch.Tensor:
    """Class logits ``(N, C)`` (fp32, on the CPU) of ``method`` on the text column(s) of ``data``."""
    if len(data) == 0:
        raise InputError("the dataset is empty: nothing to predict; check the split or filter")
    device = one_device(method)
    precision = resolve_precision(mixed_precision, device)
    columns = [c for c in ("text_a", "text_b") if c in data.column_names] or ["text"]
    out = []
    with eval_mode(method), frozen_weights_cast(method, device, precision), autocast(device, precision):
        for i in range(0, len(data), batch_size):
            rows = data[i : i + batch_size]
            texts = rows["text"] if columns == ["text"] else {c: rows[c] for c in columns}
            out.append(method(texts).float().cpu())
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


def evaluate(method: nn.Module, data: Dataset, batch_size: int = 16, mixed_precision: str = "auto") -> dict:
    """Accuracy of ``method`` on ``data`` with its predictions, logits and per-item outcomes ``correct``."""
    check_dataset(method, data)
    logits = predict(method, data, batch_size, mixed_precision)
    pred = logits.argmax(-1)
    labels = torch.tensor(data["label"])
    correct = pred == labels
    return {
        "accuracy": correct.float().mean().item(),
        "predictions": pred,
        "logits": logits,
        "correct": correct.numpy(),
        "n": len(labels),
    }
