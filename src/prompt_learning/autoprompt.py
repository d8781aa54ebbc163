"""AutoPrompt: a discrete prompt found by gradient-guided search over the vocabulary (Shin, Razeghi,
Logan, Wallace & Singh 2020, "AutoPrompt: Eliciting Knowledge from Language Models with
Automatically Generated Prompts").

The template holds *trigger tokens*, real vocabulary tokens shared by every input, chosen to make a
frozen LM put the right label word in the answer slot. The trigger slots are written with the
``[P0]``, ``[P1]``, … markers that P-tuning's templates use (:mod:`prompt_learning.templates`):
P-tuning fills those slots with trained vectors, AutoPrompt with vocabulary tokens::

    AutoPrompt(bb, "{text} [P0][P1][P2] {mask}.", Verbalizer({"negative": "bad", "positive": "good"}))

Each search step (HotFlip's first-order step, as AutoPrompt takes it):

1. pick one trigger position ``j`` (seeded, at random) and a batch of training examples;
2. compute the loss ``L = −(1/B) Σ log p(y | x_prompt)`` with ``p(y | x) = Σ_{w ∈ V_y} p([MASK] = w | x)``
   (the label words' probabilities over the full vocabulary, summed per class; ``loss="classes"``
   renormalises over the classes instead) and its gradient with
   respect to the input embedding ``e_j`` of that position, ``g = ∇_{e_j} L`` (summed over the batch);
3. the gradient with respect to the position's one-hot input is ``E g`` (``E`` the ``V × H`` input
   embedding matrix), so swapping in token ``w`` changes the loss by about ``(e_w − e_j) · g``; the
   candidates are the top ``k`` of the first-order estimate ``−e_w · g`` (:meth:`AutoPrompt.candidate_scores`);
4. evaluate each candidate exactly on the batch and keep the best if it lowers the loss; else
   keep the current token. A step therefore never raises the loss on its batch.

Prompt tuning (:class:`~prompt_learning.soft_prompts.PromptTuning`) follows the same gradient ``g`` but
keeps the continuous vector it leads to; AutoPrompt projects it back to a real token, so the result is
a hard prompt any cloze classifier can read (``AutoPromptResult.template``), at the price of a
search over a discrete space instead of gradient descent in a continuous one.

AutoPrompt's code evaluates the candidates on a fresh batch and accumulates the gradient over
several; here one batch serves both (``batch_size`` sets its size), which is what makes step 4's
guarantee hold on that batch. Works on a masked LM (the mask anywhere) and on a causal LM (the
answer at the end of the template).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .auto_label_words import labelled_examples, whole_word_ids
from .backbones import Backbone
from .method import InputError, PromptLearningConfig, PromptMethod
from .positions import check_positions
from .precision import autocast, frozen_weights_cast, resolve_precision
from .readout import answer_logits, check_lm_backbone
from .training import eval_mode
from .templates import VIRTUAL, Template
from .verbalizers import Verbalizer


class AutoPromptError(InputError):
    """An AutoPrompt set-up that cannot work; the message names the fix."""


@dataclass
class AutoPromptConfig(PromptLearningConfig):
    num_iterations: int = 20  # search steps, one trigger position each
    batch_size: int = 16  # examples per step: the gradient and the exact evaluation use the same batch
    num_candidates: int = 10  # k: tokens from the first-order ranking evaluated exactly per step
    init_token: str = "the"  # every trigger starts as this token (one token where the triggers stand)
    exclude_label_words: bool = True  # a trigger may not be a label word (AutoPrompt's filter)
    words_only: bool = True  # triggers are whole words with a letter: no specials, fragments, punctuation
    loss: str = (
        "vocabulary"  # −log p(y) over the full vocabulary (AutoPrompt's); "classes": over the C classes
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("num_iterations", "batch_size", "num_candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AutoPromptError(f"AutoPromptConfig.{name} must be a positive integer, got {value!r}")
        if self.loss not in ("vocabulary", "classes"):
            raise AutoPromptError(f"loss must be 'vocabulary' (AutoPrompt's) or 'classes', got {self.loss!r}")
        if not isinstance(self.init_token, str) or not self.init_token.strip():
            raise AutoPromptError(f"init_token must be a word such as 'the', got {self.init_token!r}")


@dataclass
class SearchStep:
    """One step of the search."""

    position: int  # the trigger position tried
    before: str  # its token before the step
    after: str  # its token after (the same when no candidate lowered the loss)
    loss_before: float  # batch loss with the triggers before the step
    loss_after: float  # batch loss after it (≤ loss_before)
    candidates: list[str] = field(default_factory=list)  # the k tokens evaluated exactly


@dataclass
class AutoPromptResult:
    """The found prompt: as template text, as trigger ids, and how the search went."""

    template: str  # the template with its triggers written as words: a hard prompt
    trigger_ids: list[int]  # the exact token ids (re-tokenising ``template`` may split differently)
    trigger_tokens: list[str]
    losses: list[float]  # the batch loss after each step
    steps: list[SearchStep]


class AutoPrompt(PromptMethod):
    """Trigger tokens in a template on a frozen LM, searched with gradient-guided token swaps.

    Args:
        backbone: a masked or causal LM (frozen: nothing trains).
        template: a template with trigger markers ``[P0]``, ``[P1]``, … and one ``{mask}``.
        verbalizer: one-token label words per class.
        config: :class:`AutoPromptConfig`.

    >>> ap = AutoPrompt(load_backbone("tiny-bert"), "{text} [P0][P1] {mask}.",
    ...                 Verbalizer({"negative": "bad", "positive": "good"}), AutoPromptConfig(num_iterations=3))
    >>> result = ap.search(train)  # a Dataset with "text" and a ClassLabel "label"
    >>> "[P0]" in result.template  # the triggers are words now, e.g. '{text} the movie {mask}.'
    False

    Input: texts (B); the triggers (n,) are token ids at the marker positions. Output: class
    log-probabilities ``log p(y | x)`` (B, C), AutoPrompt's summed label-word probabilities.
    """

    config_class = AutoPromptConfig

    def __init__(
        self,
        backbone: Backbone,
        template: Template | str,
        verbalizer: Verbalizer,
        config: AutoPromptConfig | None = None,
    ):
        config = config if config is not None else AutoPromptConfig()
        if not isinstance(verbalizer, Verbalizer):
            raise AutoPromptError(
                f"AutoPrompt reads label words: pass a Verbalizer, got {type(verbalizer).__name__}"
            )
        super().__init__(backbone, config, verbalizer.labels)
        self.template = Template(template) if isinstance(template, str) else template
        if not self.template.num_virtual_tokens:
            raise AutoPromptError(
                f"{self.template!r} has no trigger tokens: mark them [P0], [P1], … (e.g. "
                "'{text} [P0][P1][P2] {mask}.'); virtual_tokens(3) writes the markers"
            )
        check_lm_backbone(backbone, self.template, "AutoPrompt", AutoPromptError, virtual_tokens=True)
        self.causal = backbone.kind == "causal-lm"
        self.verbalizer = verbalizer
        self.label_ids = verbalizer.token_ids(self.tokenizer, space_before=self.template.mask_space)
        self.text_columns = self.template.text_slots
        check_positions(self.model, config.max_length)
        self.model.requires_grad_(False)
        # candidate triggers: whole words (they stand after a space in the template's text form)
        pool = set(whole_word_ids(self.tokenizer, True, config.words_only))
        if config.exclude_label_words:
            pool -= set(self.verbalizer.flat_ids(self.label_ids))
        self.allowed = torch.zeros(len(self.tokenizer), dtype=torch.bool)
        self.allowed[sorted(pool)] = True  # (V,)
        init = self.tokenizer(" " + config.init_token.strip(), add_special_tokens=False)["input_ids"]
        if len(init) != 1:
            raise AutoPromptError(
                f"init_token {config.init_token!r} is {len(init)} tokens "
                f"{self.tokenizer.convert_ids_to_tokens(init)}; choose a one-token word such as 'the'"
            )
        self.register_buffer(
            "trigger_ids",
            torch.full((self.template.num_virtual_tokens,), init[0], dtype=torch.long, device=self.device),
        )

    @property
    def num_triggers(self) -> int:
        return self.template.num_virtual_tokens

    # --- the loss and its gradient ---------------------------------------------------------------
    def encode(self, columns: dict[str, list[str]]) -> dict[str, torch.Tensor]:
        """``input_ids`` (placeholders at the triggers), ``attention_mask``, ``virtual_index`` (B, T), ``mask_pos`` (B,)."""
        b = self.template.encode(self.tokenizer, columns, self.config.max_length, causal=self.causal)
        return {k: v.to(self.device) for k, v in b.items()}

    def input_ids(self, b: dict[str, torch.Tensor], triggers: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids ``(B, T)`` with ``triggers`` (n,) (default: the current ones) at the marker positions."""
        triggers = self.trigger_ids if triggers is None else triggers.to(self.device)
        vidx = b["virtual_index"]
        return torch.where(vidx >= 0, triggers[vidx.clamp(min=0)], b["input_ids"])  # (B, T)

    def class_log_probs(
        self,
        b: dict[str, torch.Tensor],
        inputs_embeds: torch.Tensor | None = None,
        triggers: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``log p(y | x) = log Σ_{w ∈ V_y} p(w)`` over the full vocabulary, ``(B, C)``."""
        ids = None if inputs_embeds is not None else self.input_ids(b, triggers)
        logits = answer_logits(
            self.model, self.causal, ids, b["attention_mask"], b["mask_pos"], inputs_embeds
        )
        logp = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
        return torch.stack([logp[:, ids_].logsumexp(-1) for ids_ in self.label_ids], dim=-1)  # (B, C)

    def loss(
        self,
        b: dict[str, torch.Tensor],
        labels: torch.Tensor,
        triggers: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean ``−log p(y | x_prompt)`` over the batch (a scalar).

        ``config.loss="vocabulary"`` normalises ``p(y | x)`` over the whole vocabulary, as AutoPrompt
        does: a prompt also gains by making every label word likelier. ``"classes"`` renormalises over
        the ``C`` classes (a cross-entropy between them), which rewards telling the classes apart only.
        """
        logp = self.class_log_probs(b, inputs_embeds, triggers)  # (B, C)
        if self.config.loss == "classes":
            logp = torch.log_softmax(logp, dim=-1)  # (B, C)
        return -logp.gather(-1, labels.to(self.device)[:, None]).mean()

    def candidate_scores(
        self, b: dict[str, torch.Tensor], labels: torch.Tensor, position: int
    ) -> torch.Tensor:
        """First-order estimate of the loss decrease for every token at trigger ``position``: ``−E g`` (V,).

        ``g = ∇_{e_j} L`` (H,) is the gradient of the batch loss with respect to the input embedding at
        that trigger, summed over the batch; ``E`` (V, H) is the input embedding matrix.
        """
        return self._loss_and_scores(b, labels, position)[1]

    def _loss_and_scores(
        self, b: dict[str, torch.Tensor], labels: torch.Tensor, position: int
    ) -> tuple[float, torch.Tensor]:
        """The batch loss with the current triggers and :meth:`candidate_scores`, from one forward pass."""
        if not 0 <= position < self.num_triggers:
            raise AutoPromptError(f"position {position} is not a trigger: choose 0 … {self.num_triggers - 1}")
        table = self.model.get_input_embeddings()
        embeds = table(self.input_ids(b)).detach().requires_grad_(True)  # (B, T, H)
        with torch.enable_grad():
            loss = self.loss(b, labels, inputs_embeds=embeds)
            (grad,) = torch.autograd.grad(loss, embeds)  # (B, T, H)
        at = (b["virtual_index"] == position).unsqueeze(-1)  # (B, T, 1)
        g = (grad * at).sum((0, 1))  # (H,)
        return float(loss), -(table.weight.detach().float() @ g.float())  # (V,)

    @torch.no_grad()
    def step(self, b: dict[str, torch.Tensor], labels: torch.Tensor, position: int) -> SearchStep:
        """One HotFlip step at ``position``: rank by :meth:`candidate_scores`, evaluate the top ``k``, keep the best."""
        current = self.trigger_ids.clone()
        before, scores = self._loss_and_scores(b, labels, position)  # one forward gives both
        scores[~self.allowed.to(scores.device)] = -float("inf")
        scores[current[position]] = -float("inf")  # the current token is already evaluated
        k = min(self.config.num_candidates, int(self.allowed.sum()))
        cands = scores.topk(k).indices.tolist()
        best_loss, best_id = before, int(current[position])
        for w in cands:
            trial = current.clone()
            trial[position] = w
            value = float(self.loss(b, labels, trial))
            if value < best_loss:
                best_loss, best_id = value, w
        self.trigger_ids[position] = best_id
        tok = self.tokenizer
        return SearchStep(
            position,
            tok.decode([int(current[position])]).strip(),
            tok.decode([best_id]).strip(),
            before,
            best_loss,
            [tok.decode([w]).strip() for w in cands],
        )

    def search(
        self, data, labels: Sequence[str] | None = None, mixed_precision: str = "auto"
    ) -> AutoPromptResult:
        """Run ``config.num_iterations`` steps on the labelled ``data`` (seeded: the same run each time).

        ``mixed_precision`` as for :func:`~prompt_learning.training.fit`: ``"auto"`` is bf16 autocast on a
        GPU or an AMX CPU, the gradients and the exact evaluations alike.
        """
        columns, y, names = labelled_examples(data, self.text_columns, labels)
        self.verbalizer.check_labels(names)
        precision = resolve_precision(mixed_precision, self.device)
        gen = torch.Generator().manual_seed(self.config.seed)
        steps = []
        with (
            eval_mode(self.model),
            frozen_weights_cast(self, self.device, precision),
            autocast(self.device, precision),
        ):
            for _ in range(self.config.num_iterations):
                position = int(torch.randint(self.num_triggers, (1,), generator=gen))
                rows = torch.randperm(len(y), generator=gen)[: self.config.batch_size].tolist()
                b = self.encode({c: [v[i] for i in rows] for c, v in columns.items()})
                steps.append(self.step(b, y[rows], position))
        ids = self.trigger_ids.tolist()
        return AutoPromptResult(
            self.template_text(),
            ids,
            self.tokenizer.convert_ids_to_tokens(ids),
            [s.loss_after for s in steps],
            steps,
        )

    # --- the found prompt ---------------------------------------------------------------------
    def template_text(self, triggers: Sequence[int] | None = None) -> str:
        """The template with each marker replaced by its trigger's word: a hard prompt (a string)."""
        ids = self.trigger_ids.tolist() if triggers is None else list(triggers)
        # braces in a word are literal characters of the template, not slots
        words = [self.tokenizer.decode([i]).strip().replace("{", "{{").replace("}", "}}") for i in ids]
        pattern = self.template.pattern
        ends = {m.end() for m in VIRTUAL.finditer(pattern)}  # a marker right before adds the space

        def word(m: re.Match) -> str:
            left = "" if m.start() == 0 or pattern[m.start() - 1].isspace() or m.start() in ends else " "
            right = "" if m.end() == len(pattern) or pattern[m.end()].isspace() else " "
            return left + words[int(m.group(1))] + right

        return VIRTUAL.sub(word, pattern)

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        return self.class_log_probs(self.encode(columns))  # (B, C)

    def checkpoint_spec(self) -> dict:
        return {
            "template": self.template.pattern,
            "verbalizer": self.verbalizer.spec(),
            "config": self.config.to_dict(),
            "trigger_ids": self.trigger_ids.tolist(),
        }

    @classmethod
    def from_checkpoint_spec(cls, backbone: Backbone, spec: dict) -> AutoPrompt:
        method = cls(
            backbone,
            spec["template"],
            Verbalizer.from_spec(spec["verbalizer"]),
            cls.config_class.from_dict(spec["config"]),
        )
        method.trigger_ids.copy_(torch.tensor(spec["trigger_ids"]))
        return method
