"""The contract every method keeps: one config base, one call shape, one way to be checked and saved.

A *method* wraps a backbone and maps inputs to class logits::

    method(texts)  # a list of B strings, or {"text_a": [...], "text_b": [...]}  →  (B, C)

Every method of the book — :class:`~prompt_learning.cloze.ClozeClassifier` and PET, prompt
tuning, P-tuning, prefix tuning, P-tuning v2 and the classifier head — is a :class:`PromptMethod`:

* its settings are a :class:`PromptLearningConfig` (subclassed per method; the shared fields have
  PEFT's names where PEFT has the concept: ``num_virtual_tokens``);
* ``labels`` are its classes, in the order of its output columns; :func:`check_dataset` compares them
  with a dataset's ``ClassLabel`` before any compute, so label words in another order than the
  data are an error, not a silently inverted accuracy;
* ``trainable_parameters()``, ``device`` and ``dtype`` mean the same for all; trainable tensors are
  fp32 on the backbone's device (:mod:`prompt_learning.precision`);
* the frozen-backbone dropout policy is one field, ``backbone_dropout``: ``False`` (the default)
  runs a frozen backbone in eval mode while the prompt trains, so it is the same function at train
  and test time; P-tuning v2's code keeps the backbone's dropout on (its default is ``True``). A
  backbone that trains (full fine-tuning) always uses its dropout, as usual;
* inputs are validated at the call, before the backbone runs (:func:`check_inputs`);
* any method saves and loads with :func:`~prompt_learning.checkpoints.save_prompt` /
  :func:`~prompt_learning.checkpoints.load_prompt`, through :meth:`PromptMethod.checkpoint_spec`.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from enum import Enum

import torch
from torch import nn

from .backbones import Backbone, backbone_fingerprint
from .errors import InputError


@dataclass
class PromptLearningConfig:
    """Fields every method shares (each method's config adds its own)."""

    num_virtual_tokens: int = 0  # trainable virtual tokens (per layer for deep prompts); 0: none
    max_length: int = 128  # text tokens per input, hard template included (virtual tokens come on top)
    seed: int = 0  # initial values of everything the method adds (prompts, encoders, heads)
    backbone_dropout: bool = False  # dropout in a *frozen* backbone while training (P-tuning v2's code: on)

    def __post_init__(self):
        for name in ("num_virtual_tokens", "max_length", "seed"):
            value = getattr(self, name)
            if value is None and name == "num_virtual_tokens":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise InputError(
                    f"{type(self).__name__}.{name} must be a non-negative integer, got {value!r}"
                )
        if self.max_length < 1:
            raise InputError(f"{type(self).__name__}.max_length must be at least 1, got {self.max_length}")

    def to_dict(self) -> dict:
        """Plain JSON-able values (enums by value, sequences as lists)."""
        out = {}
        for k, v in asdict(self).items():
            v = v.value if isinstance(v, Enum) else v
            out[k] = list(v) if isinstance(v, (range, tuple)) else v
        return out

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{cls.__name__} has no field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


REGISTRY: dict[str, type] = {}  # method name → class, as checkpoints name them (PEFT keeps such a registry)


class PromptMethod(nn.Module):
    """Base of every method: a backbone, a config, class labels; ``forward(texts) → (B, C)``.

    Subclasses implement :meth:`logits` on validated columns and, for checkpoints,
    :meth:`checkpoint_spec` (how to rebuild them); the rest is shared. Every method of the library is
    registered under its class name (``REGISTRY``): a checkpoint names the method so, not the
    module it lives in, so moving a class breaks no saved prompt.
    """

    config_class: type[PromptLearningConfig] = PromptLearningConfig

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__module__.startswith("prompt_learning."):
            return  # only the library's methods are rebuilt from a checkpoint (never code a file names)
        known = REGISTRY.setdefault(cls.__name__, cls)
        if known is not cls and known.__qualname__ == cls.__qualname__ and known.__module__ == cls.__module__:
            REGISTRY[cls.__name__] = cls  # the same class, its module reloaded
        elif known is not cls:
            raise TypeError(f"two methods named {cls.__name__}: {known.__module__} and {cls.__module__}")

    def __init__(self, backbone: Backbone, config: PromptLearningConfig, labels: Sequence[str]):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise InputError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.backbone = backbone
        self.model = backbone.model  # registered: .to(), parameters() and state see the backbone
        self.config = config
        self.labels = list(labels)
        # recorded now: full fine-tuning changes the weights
        self.backbone_fingerprint = backbone_fingerprint(backbone)

    # --- what every method shares -------------------------------------------------------------
    @property
    def tokenizer(self):
        return self.backbone.tokenizer

    @property
    def device(self) -> torch.device:
        return self.backbone.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The backbone's dtype (trainable tensors are fp32 whatever it is)."""
        return self.backbone.model.get_input_embeddings().weight.dtype

    def trainable_parameters(self) -> int:
        """How many numbers train: the prompt, its encoder, a head — and the backbone only if it trains."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def backbone_trains(self) -> bool:
        return any(p.requires_grad for p in self.backbone.model.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and not self.backbone_trains and not self.config.backbone_dropout:
            self.backbone.model.eval()  # a frozen backbone is a fixed function: no dropout
        return self

    def forward(self, texts) -> torch.Tensor:
        """Class logits ``(B, C)`` for a list of ``B`` texts (or a dict of text columns)."""
        return self.logits(check_inputs(texts, self.text_columns))

    # --- what a method provides -----------------------------------------------------------------
    text_columns: tuple[str, ...] = ("text",)

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        """``(B, C)`` for validated columns ``{name: list of B strings}``."""
        raise NotImplementedError

    def checkpoint_spec(self) -> dict:
        """Everything ``from_checkpoint_spec`` needs to rebuild this method (JSON-able)."""
        raise NotImplementedError(f"{type(self).__name__} does not describe itself for a checkpoint")

    @classmethod
    def from_checkpoint_spec(cls, backbone: Backbone, spec: dict) -> PromptMethod:
        raise NotImplementedError(f"{cls.__name__} cannot be rebuilt from a checkpoint")

    def prepare_load(self, spec: dict) -> None:
        """Bring a freshly built method into the state its checkpoint was saved in (e.g. collapsed)."""


def enum_value(cls: type[Enum], value, field: str) -> Enum:
    """``value`` as a member of ``cls`` (names or values accepted, any case), or a clear error."""
    if isinstance(value, cls):
        return value
    for member in cls:
        if str(value).lower() in (member.name.lower(), str(member.value).lower()):
            return member
    raise InputError(f"unknown {field} {value!r}; choose one of {[m.value for m in cls]}")


def check_inputs(texts, columns: Sequence[str] = ("text",)) -> dict[str, list[str]]:
    """``texts`` as validated columns: non-empty, the same length, every entry a string."""
    if isinstance(texts, str):
        raise InputError(f"got one string ({texts[:40]!r}…); pass a list of texts, e.g. [text]")
    if isinstance(texts, dict):
        cols = {k: list(v) for k, v in texts.items() if k in columns}
        missing = [c for c in columns if c not in cols]
        if missing:
            raise InputError(
                f"input columns {missing} are missing (got {sorted(texts)}); pass a dict with {list(columns)}"
            )
    else:
        if len(columns) != 1:
            raise InputError(
                f"this method reads {len(columns)} text columns {list(columns)}; "
                "pass a dict of lists, one per column"
            )
        cols = {columns[0]: list(texts)}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise InputError(f"input columns have different lengths {dict((k, len(v)) for k, v in cols.items())}")
    if lengths == {0}:
        raise InputError("the batch is empty: pass at least one text")
    for name, values in cols.items():
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise InputError(
                    f"{name}[{i}] is {v!r} ({type(v).__name__}), not a string: every input must be "
                    "text; drop or fill missing rows first (e.g. data.filter(lambda r: r['text']))"
                )
    return cols


def check_dataset(method: nn.Module, data, *, needs_labels: bool = True) -> None:
    """Fail before any compute when ``data`` cannot be used with ``method``.

    Empty data, a ``ClassLabel`` whose names (or count) differ from the method's ``labels``,
    and labels outside ``0 … C-1`` are errors that name the fix.
    """
    if len(data) == 0:
        raise InputError("the dataset is empty: nothing to train on or evaluate; check the split or filter")
    labels = getattr(unwrap(method), "labels", None)
    if not needs_labels or "label" not in data.column_names or not labels:
        return
    feature = data.features.get("label") if hasattr(data, "features") else None
    names = getattr(feature, "names", None)
    if names is not None and not _auto_labels(labels) and list(names) != list(labels):
        raise InputError(
            f"the method's classes {list(labels)} do not match the dataset's labels {list(names)}: "
            "give the label words (or class names) in the dataset's label order"
        )
    if names is not None and len(names) != len(labels):
        raise InputError(f"the dataset has {len(names)} classes {list(names)}, the method {len(labels)}")
    values = torch.as_tensor(data["label"])
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= len(labels)):
        bad = sorted({int(v) for v in values.tolist() if not 0 <= v < len(labels)})
        raise InputError(
            f"labels {bad[:5]} are outside the method's {len(labels)} classes {list(labels)}; "
            "map them to 0 … C-1 or build the method with every class"
        )


def _auto_labels(labels: Sequence[str]) -> bool:
    """Labels made from a class count (``"0"``, ``"1"``, …): only the count is compared."""
    return list(labels) == [str(i) for i in range(len(labels))]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Everything drawn inside comes from ``seed``; the caller's random state is left untouched.

    How every method draws its initial values (prompts, encoders, heads, LoRA's A) from ``config.seed``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def unwrap(method: nn.Module) -> nn.Module:
    """The method itself, also when a ``DistributedDataParallel`` wrapper holds it (as ``.module``)."""
    return getattr(method, "module", method)
