"""Verbalizers: the label words that stand for each class in the answer slot.

``Verbalizer({"negative": ["terrible"], "positive": ["great"]})`` maps each class (in the
order of the dataset's label names) to one or more words. A class's score is the mean of its
words' logits in the answer slot (Schick & Schütze 2021). Each word must be *one* token for the
backbone's tokenizer — written as it appears after the template's space, so " great" for a BPE
tokenizer — unless ``multi_token="first"`` asks to score a long word by its first token.

``multi_token="sum"`` scores every word, however many tokens it has, by the log-probability of its
whole token sequence in the answer slot: the sum of per-token log-probabilities, each token
conditioned on the ones before it for a causal LM, filled most-confident-first into as many masks
as the word has tokens for a masked LM (PET with multiple masks, Schick & Schütze 2021, "It's Not
Just Size That Matters"). That needs the backbone, not one slot's logits:
``prompt_learning.multi_token.MultiTokenCloze`` does it, with ``Verbalizer.token_sequences``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .errors import PromptLearningError


class VerbalizerError(PromptLearningError, ValueError):
    """Label words that cannot work with this tokenizer; the message names the fix."""


class Verbalizer:
    """PET's verbalizer: the label words that stand for each class in the answer slot.

    >>> v = Verbalizer({"negative": "bad", "positive": ["good", "great"]})
    >>> v.labels, v.words
    (['negative', 'positive'], [['bad'], ['good', 'great']])

    Classes keep the order they are given in, which must be the dataset's label order
    (:meth:`check_labels` refuses another). A class with several words scores the mean of their
    logits. ``multi_token`` says what a word of several tokens means: ``"error"`` refuses it (the
    default: a one-token slot cannot hold it), ``"first"`` reads its first token, ``"sum"`` scores
    the whole word (read by :class:`~prompt_learning.multi_token.MultiTokenCloze`).
    """

    def __init__(self, words: Mapping[str, Sequence[str] | str], multi_token: str = "error"):
        if not words:
            raise VerbalizerError("a verbalizer needs at least two classes, got none")
        if multi_token not in ("error", "first", "sum"):
            raise VerbalizerError(
                f"multi_token must be 'error' or 'first' (one token in the slot), or 'sum' "
                f"(the whole word's log-probability), got {multi_token!r}"
            )
        self.labels = list(words)
        self.words = [[w] if isinstance(w, str) else list(w) for w in words.values()]
        not_str = [
            (label, w) for label, ws in zip(self.labels, self.words) for w in ws if not isinstance(w, str)
        ]
        if not_str:
            raise VerbalizerError(f"label words must be strings, got {not_str}; write each word as text")
        empty = [label for label, ws in zip(self.labels, self.words) if not any(w.strip() for w in ws)]
        if empty:
            raise VerbalizerError(f"label(s) {empty} have no label words; give each class at least one word")
        blank = [label for label, ws in zip(self.labels, self.words) if any(not w.strip() for w in ws)]
        if blank:
            raise VerbalizerError(f"label(s) {blank} have an empty label word among their words; remove it")
        if len(self.labels) < 2:
            raise VerbalizerError(f"a verbalizer needs at least two classes, got {self.labels}")
        self.multi_token = multi_token

    def __repr__(self) -> str:
        return f"Verbalizer({dict(zip(self.labels, self.words))})"

    def spec(self) -> dict:
        """The words and settings as plain JSON (for checkpoints)."""
        return {"words": dict(zip(self.labels, self.words)), "multi_token": self.multi_token}

    @classmethod
    def from_spec(cls, spec: dict) -> Verbalizer:
        return cls(spec["words"], multi_token=spec.get("multi_token", "error"))

    def check_labels(self, names: Sequence[str]) -> None:
        """Fail early when the classes differ from a dataset's label names."""
        if list(names) != self.labels:
            raise VerbalizerError(
                f"verbalizer classes {self.labels} do not match the dataset's labels "
                f"{list(names)}; give the words in the dataset's label order"
            )

    def token_ids(self, tokenizer, space_before: bool = True) -> list[list[int]]:
        """One token id per label word, grouped by class (validated)."""
        if self.multi_token == "sum":
            raise VerbalizerError(
                "this verbalizer has multi_token='sum': its words are scored by their whole token sequence, "
                "which one slot's logits cannot give. Use MultiTokenCloze(backbone, template, verbalizer) from "
                "prompt_learning.multi_token, or build the Verbalizer with multi_token='error' or 'first'"
            )
        out = []
        for label, words in zip(self.labels, self.words):
            ids = []
            for w in words:
                toks = tokenizer((" " if space_before else "") + w.strip(), add_special_tokens=False)[
                    "input_ids"
                ]
                if len(toks) != 1 and self.multi_token == "error":
                    pieces = tokenizer.convert_ids_to_tokens(toks)
                    other = tokenizer(("" if space_before else " ") + w.strip(), add_special_tokens=False)[
                        "input_ids"
                    ]
                    hint = (
                        (
                            f" (it would be one token {tokenizer.convert_ids_to_tokens(other)} "
                            f"{'without' if space_before else 'with'} the space before the slot, which the "
                            "template decides)"
                        )
                        if len(other) == 1
                        else ""
                    )
                    raise VerbalizerError(
                        f"label word {w!r} (class {label!r}) is {len(toks)} tokens {pieces} for this "
                        f"tokenizer{hint}; choose a single-token word, or pass multi_token='first'"
                    )
                if toks[0] == tokenizer.unk_token_id:
                    raise VerbalizerError(
                        f"label word {w!r} (class {label!r}) is the unknown token "
                        f"{tokenizer.unk_token!r} for this tokenizer; choose a word in its vocabulary"
                    )
                ids.append(toks[0])
            out.append(ids)
        owners: dict[int, list[str]] = {}
        for label, ids in zip(self.labels, out):
            for i in set(ids):
                owners.setdefault(i, []).append(label)
        shared = {
            tokenizer.convert_ids_to_tokens(i): labels for i, labels in owners.items() if len(labels) > 1
        }
        if shared:
            raise VerbalizerError(
                f"token(s) {shared} stand for several classes, so those classes cannot be "
                "told apart; give each class its own (first) token"
            )
        return out

    def class_logits(self, word_logits: torch.Tensor, token_ids: list[list[int]]) -> torch.Tensor:
        """``(B, V)`` logits in the answer slot → ``(B, C)`` class scores (mean over each class's words)."""
        return torch.stack([word_logits[:, ids].mean(-1) for ids in token_ids], dim=-1)

    def flat_ids(self, token_ids: list[list[int]]) -> list[int]:
        return [i for ids in token_ids for i in ids]

    def token_sequences(self, tokenizer, space_before: bool = True) -> list[list[list[int]]]:
        """Every label word's full token ids, grouped by class (for ``multi_token="sum"``), validated.

        A word may be several tokens; none may be the unknown token, and two classes may not share a
        word's whole sequence (sharing a first token, " the economy" and " the market", is fine).
        """
        out = []
        for label, words in zip(self.labels, self.words):
            seqs = []
            for w in words:
                toks = tokenizer((" " if space_before else "") + w.strip(), add_special_tokens=False)[
                    "input_ids"
                ]
                if not toks:
                    raise VerbalizerError(
                        f"label word {w!r} (class {label!r}) is no token at all for this "
                        "tokenizer; choose a word it can spell"
                    )
                if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in toks:
                    raise VerbalizerError(
                        f"label word {w!r} (class {label!r}) contains the unknown token "
                        f"{tokenizer.unk_token!r} for this tokenizer; choose words in its vocabulary"
                    )
                seqs.append(list(toks))
            out.append(seqs)
        owners: dict[tuple[int, ...], list[str]] = {}
        for label, seqs in zip(self.labels, out):
            for seq in {tuple(s) for s in seqs}:
                owners.setdefault(seq, []).append(label)
        shared = {
            tokenizer.decode(list(s)).strip(): labels for s, labels in owners.items() if len(labels) > 1
        }
        if shared:
            raise VerbalizerError(
                f"label word(s) {shared} stand for several classes, so those classes cannot be "
                "told apart; give each class its own words"
            )
        return out

    def word_index(self) -> list[list[int]]:
        """Each class's columns in a flat ``(B, W)`` table of word scores (words in class order)."""
        out, start = [], 0
        for words in self.words:
            out.append(list(range(start, start + len(words))))
            start += len(words)
        return out
