"""Where tensors live and in what precision: one rule for every backbone, method and loop.

* **Device.** A backbone is placed once, when it is loaded (:func:`resolve_device`: ``"auto"`` is
  the GPU when there is one, else the CPU). Every method creates its trainable tensors on the
  backbone's device, in fp32.
* **Precision.** Weights and trainable tensors stay in the dtype they were made in; mixed precision
  is ``torch.autocast`` around the forward (:func:`autocast`), chosen per call, never a
  process-wide setting. ``"auto"`` follows the hardware (:func:`auto_precision`):

  - a GPU with native bf16 (compute capability ≥ 8): ``"bf16"``;
  - an older GPU (T4, V100): ``"fp16"``, with loss scaling (:func:`grad_scaler`);
  - a CPU with AMX-BF16 or AVX512-BF16: ``"bf16"`` (about 2× faster forwards, measured in
    ``benchmarks/precision_cpu.py``);
  - any other CPU: ``"no"`` (fp32: bf16 there is slower, not faster).

* **Frozen weights cast once.** On a CPU, ``fit`` and ``evaluate`` hold a frozen backbone's
  ``nn.Linear`` weights as bf16 copies for the duration of the call (:func:`frozen_weights_cast`):
  the numbers autocast would give, without re-casting every weight at every forward. The fp32
  weights are what the model holds before and after.
* **Casts where tensors meet.** A fp32 prompt entering a bf16 backbone is cast to the backbone's
  dtype (``embed``, ``kv_prefix``); a bf16 hidden state entering a fp32 head is cast to the head's
  dtype (:func:`to_dtype_of`). Inside ``autocast`` the matmuls run in the low precision either way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Iterator

import torch
from torch import nn

from .errors import PromptLearningError
from .switches import switch

PRECISIONS = ("auto", "no", "bf16", "fp16")
CPU_BF16_ENV = "PROMPT_LEARNING_CPU_BF16"  # off ("0"): "auto" stays fp32 on every CPU
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionError(PromptLearningError, ValueError):
    """A precision or device that cannot be used here; the message names the fix."""


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or ``None``) → the first CUDA GPU if there is one, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PrecisionError(
            f"device {str(device)!r} was asked for but no CUDA GPU is visible; use device='auto' or 'cpu'"
        )
    return device


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when the CPU computes bf16 matmuls natively (AMX-BF16 or AVX512-BF16 in ``/proc/cpuinfo``).

    Without them bf16 autocast is *slower* than fp32 on a CPU, so it is never chosen there.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def cpu_description() -> str:
    """The CPU's model, its cores and its bf16 flags, as every timing should record them.

    For example ``"AMD EPYC 9B14, 2 cores, avx512_bf16 yes, amx_bf16 no"``: timings differ between
    machines of the same size, by about 2x between one with AMX and one without.
    """
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    marks = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx512_bf16", "amx_bf16"))
    return f"{model}, {os.cpu_count()} cores, {marks}"


def auto_precision(device: torch.device | str) -> str:
    """The precision ``"auto"`` stands for on ``device``: ``"bf16"``, ``"fp16"`` or ``"no"``."""
    device = torch.device(device)
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return "bf16" if major >= 8 else "fp16"
    if not switch(CPU_BF16_ENV, default=True):
        return "no"
    return "bf16" if cpu_has_fast_bf16() else "no"


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``precision`` checked against ``device``; ``"auto"`` replaced by :func:`auto_precision`."""
    if precision not in PRECISIONS:
        raise PrecisionError(
            f"mixed precision {precision!r} is not one of {PRECISIONS}; 'auto' follows the hardware"
        )
    device = torch.device(device)
    if precision == "auto":
        return auto_precision(device)
    if precision == "fp16" and device.type == "cpu":
        raise PrecisionError("fp16 autocast is for GPUs; on a CPU use 'bf16' (fast with AMX) or 'no'")
    if precision == "bf16" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        raise PrecisionError(
            f"{torch.cuda.get_device_name(device)} has no native bf16 (compute capability "
            "below 8, e.g. a T4); use 'fp16' (with loss scaling) or 'auto'"
        )
    return precision


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for a resolved ``precision`` on ``device`` (a no-op for ``"no"``)."""
    precision = resolve_precision(precision, device)
    if precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 (its small range underflows small gradients)."""
    precision = resolve_precision(precision, device)
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def to_dtype_of(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``x`` cast to the dtype of ``module``'s weights, where the two meet (e.g. bf16 hidden → fp32 head)."""
    dtype = next((p.dtype for p in module.parameters()), x.dtype)
    return x if x.dtype == dtype or torch.is_autocast_enabled(x.device.type) else x.to(dtype)


def one_device(module: nn.Module) -> torch.device:
    """The single device every parameter of ``module`` is on, or a clear error."""
    devices = {p.device for p in module.parameters()}
    if len(devices) > 1:
        names = sorted({f"{n} on {p.device}" for n, p in module.named_parameters()})[:4]
        raise PrecisionError(
            f"{type(module).__name__} has parameters on several devices ({names} …); "
            "load the backbone with device= and build the method after it"
        )
    return devices.pop() if devices else torch.device("cpu")


@contextlib.contextmanager
def frozen_weights_cast(module: nn.Module, device: torch.device | str, precision: str) -> Iterator[None]:
    """Inside, the frozen ``nn.Linear`` weights of ``module`` are held in the autocast dtype (CPU only).

    Autocast casts a weight to bf16 at every matmul and keeps the copy only for weights that require
    grad, so a frozen backbone is cast anew on every forward: on a 2-core CPU about a quarter of a
    SmolLM2 forward (``benchmarks/cpu_step.py``). Casting each frozen weight once per call gives
    the same numbers (the same rounding) without that cost. Trainable weights are left alone; a
    weight shared with an embedding (a tied LM head) gets a copy, so the embedding stays fp32.
    Afterwards every module holds its own weight again. On GPUs (fast casts, scarce memory) and for
    ``"no"`` it does nothing.
    """
    precision = resolve_precision(precision, device)
    if precision == "no" or torch.device(device).type != "cpu":
        yield
        return
    dtype = _DTYPES[precision]
    frozen = [
        m
        for m in module.modules()
        if isinstance(m, nn.Linear) and not m.weight.requires_grad and m.weight.dtype == torch.float32
    ]
    originals = [m.weight for m in frozen]
    copies: dict[int, nn.Parameter] = {}  # one copy per weight, however many modules share it
    try:
        for m, w in zip(frozen, originals):
            if id(w) not in copies:
                copies[id(w)] = nn.Parameter(w.detach().to(dtype), requires_grad=False)
            m._parameters["weight"] = copies[id(w)]
        yield
    finally:
        for m, w in zip(frozen, originals):
            m._parameters["weight"] = w


def fp32_on_cpu(device: torch.device | str) -> contextlib.AbstractContextManager:
    """Full precision for a block on a CPU, even inside bf16 autocast; nothing changes elsewhere.

    For the ops a CPU has no bf16 kernel for everywhere: oneDNN's bf16 LSTM needs AVX512, so
    P-tuning's LSTM encoder runs in fp32 on a CPU (over ``n`` virtual tokens it costs nothing next
    to the backbone).
    """
    return no_autocast() if torch.device(device).type == "cpu" else contextlib.nullcontext()


@contextlib.contextmanager
def no_autocast() -> Iterator[None]:
    """Leave autocast for a block that must run in full precision (e.g. a loss on fp32 logits)."""
    with (
        torch.autocast("cpu", enabled=False),
        torch.autocast("cuda", enabled=False) if torch.cuda.is_available() else contextlib.nullcontext(),
    ):
        yield
