"""Run profiles: every experiment of the book sized in one place.

* ``smoke`` — CI runs every notebook this way: the embedded backbones, a handful of examples, a
  few steps; the numbers mean nothing, the code paths are the real ones.
* ``cpu`` — the default and the website: embedded backbones (SmolLM2-135M, MiniLM-L6), sized
  so the whole book executes in about 20 minutes on 2 CPU cores.
* ``gpu`` — a CUDA GPU with room for paper scale (an 80 GB A100 or H100: see
  :mod:`prompt_learning.memory`): hub backbones, more shots and seeds.
* ``t4`` — Colab's free T4 (16 GB, no native bf16): hub backbones that fit in it (SmolLM2-360M,
  RoBERTa-large), the chapters' ``gpu`` size rows with fewer seeds, shots and steps, fp16 autocast.
* ``rehearsal`` — the ``gpu`` profile's hub ids and branches at ``smoke`` sizes, on a CPU, with bf16
  autocast: run against the hub cache of tiny random stand-ins that :mod:`prompt_learning.rehearsal`
  builds, it executes every hub-only code path with no hub and no GPU (``make rehearse``).

Chapters read ``profile.sizes`` (which row of their size tables) and ``profile.hub`` (whether to
take the hub-only branches: PET on the masked LM, the Chinese masked LM, …), never the name.

Choose with ``PROMPT_LEARNING_PROFILE=smoke|cpu|gpu|t4|rehearsal``. With nothing set: on Colab
with a GPU, ``gpu`` when the GPU holds what the ``gpu`` profile needs, else ``t4``; elsewhere ``cpu``.
``PROMPT_LEARNING_OFFLINE_STANDINS=1`` keeps the ``gpu`` / ``t4`` sizes and precision but loads the
embedded backbones instead of the hub's (for a GPU machine that cannot reach the hub). Every
notebook prints the profile it ran.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import torch

from .budgets import REFERENCE_DEVICE, chapter_runs, chapter_table
from .errors import PromptLearningError
from .precision import PRECISIONS, PrecisionError, resolve_device, resolve_precision
from .switches import switch

SIZE_ROWS = ("smoke", "cpu", "gpu")  # the rows of every chapter's size table


class ProfileError(PromptLearningError, ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    causal_lm: str  # decoder used for cloze-at-the-end, in-context learning, generation
    encoder: str  # encoder for heads, P-tuning v2 (an MLM in the hub profiles)
    masked_lm: str  # masked LM for PET with the mask anywhere (a tiny one where none is embedded)
    chinese_mlm: str | None  # Chinese masked LM (hub only)
    n_eval: int  # test sentences each accuracy is measured on (fixed, class-balanced subset)
    seeds: tuple[int, ...]  # training / sampling seeds; spreads are over these
    shots: tuple[int, ...]  # k examples per class for few-shot training
    icl_shots: tuple[int, ...]  # demonstrations per prompt for in-context learning
    steps: int  # optimiser steps per training run
    batch_size: int
    max_length: int  # tokens per input (longer inputs are truncated)
    sizes: str = "cpu"  # which row of each chapter's size table: "smoke" | "cpu" | "gpu"
    hub: bool = False  # hub backbones: the chapters take their hub-only branches
    mixed_precision: str = "auto"  # "auto" | "no" | "bf16" | "fp16", resolved where used (precision.py)
    needs_cuda: bool = False  # refuse to start without a CUDA GPU
    standins: tuple[str, ...] = ()  # hub ids replaced by embedded ones (PROMPT_LEARNING_OFFLINE_STANDINS)
    extra: dict = field(default_factory=dict)  # chapter-specific sizes, read by key

    def __post_init__(self):
        if self.sizes not in SIZE_ROWS:
            raise ProfileError(f"profile {self.name!r}: sizes must be one of {SIZE_ROWS}, got {self.sizes!r}")
        if self.mixed_precision not in PRECISIONS:
            raise ProfileError(
                f"profile {self.name!r}: mixed_precision must be one of {PRECISIONS}, "
                f"got {self.mixed_precision!r}"
            )

    @property
    def precision(self) -> str:
        """``mixed_precision`` resolved for the device a backbone is placed on here ("no" = fp32)."""
        return resolve_precision(self.mixed_precision, resolve_device("auto"))

    def describe(self) -> str:
        try:
            resolved = {"no": "fp32"}.get(self.precision, self.precision)
            precision = f"{resolved} (mixed_precision {self.mixed_precision!r})"
        except PrecisionError as e:
            precision = f"{self.mixed_precision!r}, not usable here: {e}"
        zh = f", Chinese MLM {self.chinese_mlm}" if self.chinese_mlm else ""
        source = "hub" if self.hub else "embedded"
        text = (
            f"profile {self.name!r}: sizes {self.sizes!r}, {source} backbones: "
            f"causal LM {self.causal_lm}, encoder {self.encoder}, masked LM {self.masked_lm}{zh}; "
            f"{self.n_eval} test examples, seeds {list(self.seeds)}, k {list(self.shots)}, "
            f"{self.steps} steps × batch {self.batch_size}, device {device_name()}, "
            f"precision {precision}"
        )
        if self.standins:
            text += (
                f"; offline stand-ins: embedded backbones in place of the hub's "
                f"{', '.join(self.standins)} (the hub-only sections are skipped)"
            )
        return text


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        "smollm2-135m",
        "minilm-l6",
        "tiny-roberta",
        None,
        n_eval=16,
        seeds=(0,),
        shots=(2,),
        icl_shots=(0, 1),
        steps=2,
        batch_size=4,
        max_length=48,
        sizes="smoke",
    ),
    "cpu": Profile(
        "cpu",
        "smollm2-135m",
        "minilm-l6",
        "tiny-roberta",
        None,
        n_eval=200,
        seeds=(0, 1, 2),
        shots=(8, 16),
        icl_shots=(0, 1, 2, 4, 8),
        steps=40,
        batch_size=8,
        max_length=64,
        sizes="cpu",
    ),
    "gpu": Profile(
        "gpu",
        "HuggingFaceTB/SmolLM2-1.7B-Instruct",
        "roberta-large",
        "roberta-large",
        "bert-base-chinese",
        n_eval=1000,
        seeds=(0, 1, 2, 3, 4),
        shots=(4, 8, 16, 32),
        icl_shots=(0, 1, 2, 4, 8, 16),
        steps=250,
        batch_size=16,
        max_length=128,
        sizes="gpu",
        hub=True,
        needs_cuda=True,
    ),
    # sized with prompt_learning.budgets: every chapter's largest run under 15 GB and 20 minutes on a T4
    "t4": Profile(
        "t4",
        "HuggingFaceTB/SmolLM2-360M-Instruct",
        "roberta-large",
        "roberta-large",
        "bert-base-chinese",
        n_eval=1000,
        seeds=(0, 1),
        shots=(8, 16, 32),
        icl_shots=(0, 1, 2, 4, 8, 16),
        steps=150,
        batch_size=16,
        max_length=128,
        sizes="gpu",
        hub=True,
        needs_cuda=True,
    ),
}
_SMOKE_SIZED = ("n_eval", "seeds", "shots", "icl_shots", "steps", "batch_size", "max_length")
PROFILES["rehearsal"] = replace(
    PROFILES["gpu"],
    name="rehearsal",
    sizes="smoke",
    mixed_precision="bf16",
    needs_cuda=False,
    **{f: getattr(PROFILES["smoke"], f) for f in _SMOKE_SIZED},
)

STANDIN_ENV = "PROMPT_LEARNING_OFFLINE_STANDINS"
# embedded backbones a GPU machine without the hub loads in place of the hub profiles' own
EMBEDDED_STANDINS = dict(
    causal_lm="smollm2-135m", encoder="minilm-l6", masked_lm="tiny-roberta", chinese_mlm=None
)
GPU_MARGIN = 2**30  # bytes left free on the card: the CUDA context and allocator fragmentation


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def gpu_memory_needed() -> int:
    """Bytes of GPU memory the ``gpu`` profile needs: its largest estimated chapter run plus a margin."""
    return max(r.peak_bytes("bf16") for r in chapter_runs(PROFILES["gpu"])) + GPU_MARGIN


def _default() -> str:
    on_colab = "COLAB_RELEASE_TAG" in os.environ or "COLAB_GPU" in os.environ
    if not (on_colab and torch.cuda.is_available()):
        return "cpu"
    memory = torch.cuda.get_device_properties(0).total_memory
    return "gpu" if memory > 16 * 2**30 and memory >= gpu_memory_needed() else "t4"


def _with_standins(profile: Profile) -> Profile:
    replaced = tuple(getattr(profile, f) for f in EMBEDDED_STANDINS if getattr(profile, f))
    return replace(profile, hub=False, standins=tuple(dict.fromkeys(replaced)), **EMBEDDED_STANDINS)


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile ``name`` (default: ``$PROMPT_LEARNING_PROFILE``, else cpu / t4 / gpu on Colab)."""
    name = name or os.environ.get("PROMPT_LEARNING_PROFILE") or _default()
    if name not in PROFILES:
        raise ProfileError(
            f"unknown profile {name!r}; set PROMPT_LEARNING_PROFILE to one of {list(PROFILES)}"
        )
    profile = PROFILES[name]
    if profile.needs_cuda and not torch.cuda.is_available():
        raise ProfileError(
            f"the {name!r} profile needs a CUDA GPU and none is visible; "
            "use PROMPT_LEARNING_PROFILE=cpu (or on Colab: Runtime → Change runtime type → "
            "GPU; PROMPT_LEARNING_PROFILE=rehearsal runs its hub branches on a CPU)"
        )
    if profile.hub and profile.needs_cuda and switch(STANDIN_ENV, default=False):
        profile = _with_standins(profile)
    return replace(profile, **overrides)


def main() -> None:
    """``python -m prompt_learning.profiles``: each GPU profile's chapters, estimated (prompt_learning.budgets)."""
    for name, (device, precision) in REFERENCE_DEVICE.items():
        print(
            f"profile {name!r} on {device} ({precision}): peak GB, minutes of the largest run, of the chapter"
        )
        for r in chapter_table(PROFILES[name]):
            print(
                f"  ch{r['chapter']}  {r['peak_gb']:6.1f} GB  {r['largest_min']:6.1f} min  "
                f"{r['chapter_min']:6.1f} min  {r['largest run']} [{r['backbone']}]"
            )


if __name__ == "__main__":
    main()
