"""PET: Pattern-Exploiting Training (Schick & Schütze 2021, "Exploiting Cloze Questions for Few
Shot Text Classification and Natural Language Inference").

Zero-shot cloze classification (:mod:`~prompt_learning.cloze`) already works; PET trains it on a
few labelled examples with the *same* head the model was pretrained with:

* :class:`PET` — cross-entropy over the label words' logits in the answer slot. The paper
  fine-tunes the whole masked LM (``tune="all"``); ``tune="frozen"`` keeps every backbone weight
  and trains only the label words' output vectors (a probe that starts at the zero-shot answer).
* :class:`PETLoss` — ``L = (1 − α)·L_CE + α·L_LM`` with PET's auxiliary language-modelling loss
  on unlabelled text (``α = 1e-4`` in the paper; a next-token loss for a causal LM), so the model
  stays a language model while it learns the task.
* :class:`PatternEnsemble` — one model per pattern, their predictions averaged (optionally
  weighted by each pattern's accuracy on the training set *before* training, as in PET).
* :func:`soft_labels` and :func:`distil` — the ensemble labels an unlabelled pool with soft labels
  (temperature ``T = 2``) and a small classifier learns them (soft cross-entropy): PET's final
  step, and the step iPET repeats generation after generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from transformers import DataCollatorForLanguageModeling

from .backbones import Backbone
from .cloze import ClozeClassifier
from .method import InputError, PromptLearningConfig, check_inputs, unwrap
from .positions import position_ids
from .readout import answer_logits
from .templates import Template
from .training import History, eval_mode, evaluate, fit
from .verbalizers import Verbalizer

TUNES = ("all", "frozen")


@dataclass
class PETConfig(PromptLearningConfig):
    tune: str = "all"  # "all": fine-tune the whole LM (the paper); "frozen": only label-word vectors train

    def __post_init__(self):
        super().__post_init__()
        if self.tune not in TUNES:
            raise InputError(f"tune must be one of {TUNES}, got {self.tune!r}")


class PET(ClozeClassifier):
    """A :class:`~prompt_learning.cloze.ClozeClassifier` made for training: texts → label-word class logits ``(B, C)``.

    Input: a list of ``B`` texts. Output shape: ``(B, C)``, the mean LM-head logit of each class's
    label words in the answer slot. Before any training step the output equals the zero-shot
    :class:`~prompt_learning.cloze.ClozeClassifier`'s, for either ``tune``.

    ``tune="all"`` changes the backbone's weights in place: give each run its own backbone.

    >>> pet = PET(load_backbone("tiny-bert"), "{text} It was {mask}.",
    ...           Verbalizer({"negative": "bad", "positive": "good"}), PETConfig(tune="all"))
    >>> fit(pet, train, steps=16, lr=1e-5, batch_size=8)  # doctest: +SKIP
    """

    config_class = PETConfig

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str,
        verbalizer: Verbalizer,
        config: PETConfig | None = None,
    ):
        super().__init__(backbone, template, verbalizer, config if config is not None else PETConfig())
        tune = self.config.tune
        for p in self.model.parameters():
            p.requires_grad_(tune == "all")
        if tune == "frozen":
            out = self.model.get_output_embeddings()  # the LM head's last Linear (V, H)
            flat = verbalizer.flat_ids(self.label_ids)
            self.word_vectors = nn.Parameter(out.weight[flat].detach().clone().float())  # (W, H), fp32
            bias = (
                out.bias[flat].detach().clone()
                if getattr(out, "bias", None) is not None
                else torch.zeros(len(flat), device=out.weight.device)
            )
            self.word_bias = nn.Parameter(bias.float())  # (W,)
            sizes = [len(ids) for ids in self.label_ids]
            self.local_ids = [list(range(s - n, s)) for s, n in zip(np.cumsum(sizes), sizes)]

    def slot_hidden(self, texts) -> torch.Tensor:
        """``(B, H)``: the vector the LM head's last layer reads in the answer slot."""
        batch = self.encode(texts)
        captured: list[torch.Tensor] = []
        hook = self.model.get_output_embeddings().register_forward_pre_hook(
            lambda module, args: captured.append(args[0])
        )
        try:
            with torch.no_grad():
                answer_logits(
                    self.model, self.causal, batch["input_ids"], batch["attention_mask"], batch["mask_pos"]
                )
        finally:
            hook.remove()
        hidden = captured[-1]  # (B, H), or (B, T, H) when the head ran on every position
        if hidden.dim() == 3:
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            hidden = hidden[:, -1] if self.causal else hidden[rows, batch["mask_pos"]]
        return hidden  # (B, H)

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        if self.config.tune == "all":
            return super().logits(columns)  # (B, C)
        hidden = self.slot_hidden(columns).to(self.word_vectors.dtype)  # (B, H), where bf16 meets fp32
        word_logits = hidden @ self.word_vectors.T + self.word_bias  # (B, W)
        return self.verbalizer.class_logits(word_logits, self.local_ids)  # (B, C)

    def auxiliary_lm_loss(self, texts: Sequence[str], mlm_probability: float = 0.15) -> torch.Tensor:
        """PET's auxiliary loss on unlabelled ``texts``: masked-LM loss (15% of tokens) for a masked
        LM, next-token loss for a causal LM. A scalar."""
        if self.config.tune != "all":
            raise InputError(
                "the auxiliary LM loss trains the backbone, which tune='frozen' keeps fixed; "
                "use tune='all' or set alpha=0"
            )
        device = self.model.get_input_embeddings().weight.device
        texts = check_inputs(texts)["text"]
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T)
        if self.causal:
            labels = ids.masked_fill(mask == 0, -100)  # (B, T): the model shifts them itself
            out = self.model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=position_ids(mask).to(device),
                labels=labels.to(device),
            )
            return out.loss
        collator = DataCollatorForLanguageModeling(self.tokenizer, mlm_probability=mlm_probability)
        special = enc["special_tokens_mask"].bool() | (mask == 0)
        ids, labels = collator.torch_mask_tokens(ids.clone(), special_tokens_mask=special)
        if (labels != -100).sum() == 0:  # nothing drawn for masking in this batch
            return self.model.get_input_embeddings().weight.sum() * 0.0
        out = self.model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
        return out.loss


class PETLoss:
    """``(1 − α)·CE(label-word logits, y) + α·L_LM(unlabelled)``, a ``loss_fn`` for :func:`~prompt_learning.training.fit`.

    Each call draws ``lm_batch_size`` unlabelled texts (seeded) for the auxiliary loss;
    ``alpha=0`` (or no unlabelled text) leaves plain cross-entropy.
    """

    def __init__(
        self, unlabelled: Sequence[str] = (), alpha: float = 1e-4, lm_batch_size: int = 4, seed: int = 0
    ):
        if not 0.0 <= alpha < 1.0:
            raise InputError(f"alpha weighs the auxiliary LM loss and must be in [0, 1), got {alpha}")
        if alpha > 0 and len(unlabelled) == 0:
            raise InputError(
                "alpha > 0 needs unlabelled texts for the auxiliary LM loss; "
                "pass unlabelled=[...] or set alpha=0"
            )
        self.unlabelled = list(unlabelled)
        self.alpha = alpha
        self.lm_batch_size = lm_batch_size
        self.rng = np.random.default_rng(seed)
        self.last: dict[str, float] = {}  # the two parts of the latest loss, for plots

    def __call__(self, method: nn.Module, batch: dict) -> torch.Tensor:
        logits = method(batch["text"])  # (B, C)
        ce = F.cross_entropy(logits, batch["label"].to(logits.device))
        self.last = {"ce": ce.item()}
        if self.alpha == 0:
            return ce
        n = min(self.lm_batch_size, len(self.unlabelled))
        pick = self.rng.choice(len(self.unlabelled), n, replace=False)
        lm = unwrap(method).auxiliary_lm_loss([self.unlabelled[i] for i in pick])
        self.last["lm"] = lm.item()
        return (1 - self.alpha) * ce + self.alpha * lm


class PatternEnsemble(nn.Module):
    """Several pattern models (or any methods), one prediction: texts → ``(B, C)``.

    ``combine="probs"`` averages the members' class probabilities and returns their log
    (calibrated members are averaged the same way); ``combine="logits"`` averages the raw
    logits, as PET does. ``weights`` (e.g. :func:`accuracy_weights`) weigh the members.
    """

    def __init__(
        self, members: Sequence[nn.Module], weights: Sequence[float] | None = None, combine: str = "probs"
    ):
        super().__init__()
        if len(members) == 0:
            raise InputError("an ensemble needs at least one member")
        if combine not in ("probs", "logits"):
            raise InputError(f"combine must be 'probs' or 'logits', got {combine!r}")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members):
            raise InputError(f"{len(weights)} weights for {len(members)} members; give one weight per member")
        if min(weights) < 0 or sum(weights) <= 0:
            raise InputError(f"weights must be non-negative and not all zero, got {weights}")
        self.members = nn.ModuleList(members)
        self.combine = combine
        self.register_buffer("weights", torch.tensor(weights) / sum(weights))  # (M,)

    def forward(self, texts) -> torch.Tensor:
        outs = [m(texts) for m in self.members]  # M × (B, C)
        if len({o.shape for o in outs}) != 1:
            raise InputError(f"members disagree on the output shape: {[tuple(o.shape) for o in outs]}")
        stacked = torch.stack(outs).float()  # (M, B, C)
        w = self.weights.to(stacked.device)[:, None, None]  # (M, 1, 1)
        if self.combine == "logits":
            return (w * stacked).sum(0)  # (B, C)
        return (w * stacked.softmax(-1)).sum(0).clamp_min(1e-12).log()  # (B, C)


def accuracy_weights(members: Sequence[nn.Module], train: Dataset, batch_size: int = 16) -> list[float]:
    """PET's ensemble weights: each member's accuracy on the training set, measured *before* training."""
    return [evaluate(m, train, batch_size)["accuracy"] for m in members]


@torch.no_grad()
def soft_labels(
    teacher: nn.Module, texts: Sequence[str], batch_size: int = 16, temperature: float = 2.0
) -> torch.Tensor:
    """``(N, C)`` class distributions the teacher gives ``texts``: ``softmax(scores / T)`` (PET: T = 2)."""
    if temperature <= 0:
        raise InputError(f"temperature must be positive, got {temperature}")
    texts = list(texts)
    with eval_mode(teacher):
        scores = torch.cat(
            [teacher(texts[i : i + batch_size]).float().cpu() for i in range(0, len(texts), batch_size)]
        )  # (N, C)
    return F.softmax(scores / temperature, dim=-1)


def distillation_loss(method: nn.Module, batch: dict) -> torch.Tensor:
    """Soft cross-entropy ``−Σ_c q_c log p_c`` against the teacher's ``soft`` column (KL up to a constant)."""
    log_p = F.log_softmax(method(batch["text"]), dim=-1)  # (B, C)
    q = torch.as_tensor(batch["soft"], dtype=log_p.dtype, device=log_p.device)  # (B, C)
    return -(q * log_p).sum(-1).mean()


@torch.no_grad()
def distillation_kl(
    student: nn.Module, texts: Sequence[str], targets: torch.Tensor, batch_size: int = 16
) -> float:
    """Mean ``KL(targets ‖ student)`` over ``texts``: how far the student is from its teacher."""
    texts = list(texts)
    with eval_mode(student):
        log_p = torch.cat(
            [
                F.log_softmax(student(texts[i : i + batch_size]).float().cpu(), -1)
                for i in range(0, len(texts), batch_size)
            ]
        )  # (N, C)
    q = targets.float().cpu()
    return float((q * (q.clamp_min(1e-12).log() - log_p)).sum(-1).mean())


def distil(
    student: nn.Module,
    texts: Sequence[str],
    targets: torch.Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
    **fit_kwargs,
) -> History:
    """Train ``student`` to match ``targets (N, C)`` on ``texts`` (PET's final distillation step)."""
    texts = list(texts)
    if len(texts) != len(targets):
        raise InputError(f"{len(texts)} texts but {len(targets)} soft labels; give one label row per text")
    if targets.dim() != 2 or not torch.allclose(targets.sum(-1).cpu(), torch.ones(len(targets)), atol=1e-4):
        raise InputError("targets must be (N, C) rows of class probabilities summing to 1 (see soft_labels)")
    data = Dataset.from_dict({"text": texts, "soft": targets.tolist()})
    return fit(
        student,
        data,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        loss_fn=distillation_loss,
        **fit_kwargs,
    )
