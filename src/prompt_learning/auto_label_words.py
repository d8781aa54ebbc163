"""Automatic label words: LM-BFF's search for the verbalizer (Gao, Fisch & Chen 2021, "Making
Pre-trained Language Models Better Few-shot Learners", §5.2).

Given a template and a few labelled examples, the words that stand for each class are found in
two steps:

1. **candidates per class** — every word ``v`` of the vocabulary is scored by the summed
   log-probability the LM gives it in the answer slot over that class's training examples,
   ``Σ_{x ∈ D_c} log p([MASK] = v | T(x))``; the top ``k`` per class are kept. Special tokens and
   sub-word fragments are skipped: a candidate is a token that is a whole word where the slot is
   (``##ing`` is not, and neither is a BPE piece without its leading space when the template puts a
   space before the slot);
2. **assignments re-ranked** — every combination of one candidate per class (``k^C`` of them, those
   that give two classes the same word skipped) is scored by its zero-shot accuracy on the same
   training examples, read as a cloze with that verbalizer; ties are broken by the mean
   log-likelihood of the true class under the ``C``-way softmax. The best ``n`` are returned.

LM-BFF then fine-tunes each of the ``n`` and keeps the best on a development set; that last step is
training (:class:`~prompt_learning.pet.PET` with each verbalizer) and is left to the caller.

Both kinds of LM work: a masked LM reads the mask, a causal LM the next token at the end of the
template. Candidates may also be given (``candidates={"business": ["business", "the economy"]}``);
then a phrase of several tokens is scored whole, as the sum of its tokens' log-probabilities
(:mod:`prompt_learning.multi_token`), and chosen phrases come back in a
``Verbalizer(..., multi_token="sum")``, to be read by
:class:`~prompt_learning.multi_token.MultiTokenCloze`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from .backbones import Backbone
from .method import InputError
from .multi_token import slot_log_probs, word_log_probs
from .precision import autocast, frozen_weights_cast, resolve_precision
from .readout import check_lm_backbone
from .templates import Template
from .verbalizers import Verbalizer


class LabelWordError(InputError):
    """A label-word search that cannot run; the message names the fix."""


@dataclass
class ScoredVerbalizer:
    """One assignment of label words, with how well it classifies the training examples zero-shot."""

    verbalizer: Verbalizer
    accuracy: float  # zero-shot accuracy on the training examples
    log_likelihood: float  # mean log-probability of the true class over the C label words (tie-break)


@dataclass
class LabelWordSearch:
    """What :func:`auto_label_words` found: candidates per class, and the ranked assignments."""

    labels: list[str]  # classes, in the dataset's label order
    candidates: dict[str, list[tuple[str, float]]]  # class → top-k (word, summed log-probability)
    ranked: list[ScoredVerbalizer]  # the best n assignments, best first

    @property
    def best(self) -> Verbalizer:
        return self.ranked[0].verbalizer

    def candidate_table(self) -> pd.DataFrame:
        """One column per class: its candidates, best first, as ``'word (score)'``."""
        k = max(len(c) for c in self.candidates.values())
        return pd.DataFrame(
            {
                c: [f"{w} ({s:.1f})" for w, s in ws] + [""] * (k - len(ws))
                for c, ws in self.candidates.items()
            },
            index=range(1, k + 1),
        )


def labelled_examples(
    data, text_slots: Sequence[str], labels: Sequence[str] | None = None
) -> tuple[dict[str, list[str]], torch.Tensor, list[str]]:
    """Text columns, integer labels ``(N,)`` and class names from a ``Dataset`` (or a dict of lists).

    The class names come from the ``label`` column's ``ClassLabel`` (or ``labels=`` when the data
    has none; both given must agree); every class needs at least one example.
    """
    names = None
    features = getattr(data, "features", None)
    if features is not None and "label" in features:
        names = getattr(features["label"], "names", None)
    if names is not None and labels is not None and list(labels) != list(names):
        raise LabelWordError(
            f"labels {list(labels)} differ from the dataset's label names {list(names)}: "
            "give them in the dataset's order, or leave labels out"
        )
    names = list(names if names is not None else labels or [])
    columns_of = data.column_names if hasattr(data, "column_names") else list(data)
    if "label" not in columns_of:
        raise LabelWordError(
            f"the data has no 'label' column (columns: {list(columns_of)}); label the examples"
        )
    if not names:
        raise LabelWordError(
            "the class names are unknown: use a Dataset whose 'label' is a ClassLabel, "
            "or pass labels=['negative', 'positive', …] in label order"
        )
    missing = [c for c in text_slots if c not in columns_of]
    if missing:
        raise LabelWordError(
            f"the template reads column(s) {missing}, which the data lacks (it has {list(columns_of)})"
        )
    y = torch.as_tensor(list(data["label"]), dtype=torch.long)
    if y.numel() == 0:
        raise LabelWordError("the data is empty: give a few labelled examples of every class")
    bad = sorted({int(v) for v in y.tolist() if not 0 <= v < len(names)})
    if bad:
        raise LabelWordError(f"labels {bad[:5]} are outside the {len(names)} classes {names}")
    absent = [n for c, n in enumerate(names) if not (y == c).any()]
    if absent:
        raise LabelWordError(
            f"class(es) {absent} have no example, so nothing ranks their words: "
            "give every class at least one training example"
        )
    columns = {c: list(data[c]) for c in text_slots}
    return columns, y, names


def whole_word_ids(tokenizer, space_before: bool = True, words_only: bool = True) -> list[int]:
    """Ids of the tokens that are a whole word where the slot is: no special tokens, no fragments.

    A token qualifies when its text, written after the slot's space (if any), tokenises back to that
    one token: ``##ing`` (WordPiece) and ``ing`` without ``Ġ`` (BPE, after a space) do not.
    ``words_only`` also drops tokens without a letter (punctuation, digits).
    """
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special]
    words = [tokenizer.decode([i]).strip() for i in ids]
    keep = [(i, w) for i, w in zip(ids, words) if w and (not words_only or any(ch.isalpha() for ch in w))]
    prefix = " " if space_before else ""
    back = tokenizer([prefix + w for _, w in keep], add_special_tokens=False)["input_ids"]
    return [i for (i, _), b in zip(keep, back) if b == [i]]


def _batches(columns: dict[str, list[str]], size: int):
    n = len(next(iter(columns.values())))
    for s in range(0, n, size):
        yield {k: v[s : s + size] for k, v in columns.items()}


@torch.no_grad()
def auto_label_words(
    backbone: Backbone,
    template: Template | str,
    data,
    *,
    k: int = 20,
    n: int = 10,
    candidates: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    words_only: bool = True,
    max_length: int = 128,
    batch_size: int = 16,
    max_assignments: int = 1_000_000,
    mixed_precision: str = "auto",
) -> LabelWordSearch:
    """LM-BFF's automatic label-word selection on the training examples ``data``.

    Args:

    - ``backbone``: a masked or causal LM.
    - ``template``: a hard template with one ``{mask}`` (at the end for a causal LM).
    - ``data``: labelled examples, a ``Dataset`` with the template's text column(s) and a
      ``ClassLabel`` ``label`` (or a dict of lists with ``labels=``).
    - ``k``: candidates kept per class (LM-BFF's ``k``).
    - ``n``: assignments returned, best first (LM-BFF's ``n``).
    - ``candidates``: ``None`` to search the vocabulary; a dict class → words or phrases to rank
      (phrases of several tokens are scored whole); or one list shared by every class.
    - ``words_only``: vocabulary search only: skip tokens without a letter.
    - ``max_assignments``: refuse before any compute when ``k^C`` combinations exceed it.
    - ``mixed_precision``: as for :func:`~prompt_learning.training.fit` (``"auto"``: bf16 autocast on a
      GPU or an AMX CPU); the scores are summed in fp32.

    Returns: a :class:`LabelWordSearch`; ``.best`` is a :class:`~prompt_learning.verbalizers.Verbalizer` whose classes are in the
    dataset's label order. Compute: ``N`` examples × one forward pass (vocabulary or one-token
    candidates); ``N × W`` rows when a candidate has several tokens.
    """
    template = Template(template) if isinstance(template, str) else template
    check_lm_backbone(backbone, template, "the label-word search", LabelWordError)
    columns, y, names = labelled_examples(data, template.text_slots, labels)
    for name, value in (("k", k), ("n", n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LabelWordError(f"{name} must be a positive integer, got {value!r}")
    tok, space = backbone.tokenizer, template.mask_space
    if candidates is None:
        pool = whole_word_ids(tok, space, words_only)  # vocabulary ids that are whole words
        words = [tok.decode([i]).strip() for i in pool]
        per_class = {c: list(range(len(pool))) for c in names}
        if len(pool) < len(names):
            raise LabelWordError(
                f"only {len(pool)} whole-word tokens in this vocabulary for {len(names)} classes"
            )
    else:
        words, per_class = _given_candidates(candidates, names)
    width = {c: min(k, len(per_class[c])) for c in names}  # a class with fewer candidates keeps them all
    total = 1
    for c in names:
        total *= width[c]
    if total > max_assignments:
        fit = int(max_assignments ** (1 / len(names)))
        raise LabelWordError(
            f"k={k} candidates for {len(names)} classes make {total:,} assignments, more than "
            f"max_assignments={max_assignments:,}; lower k to {fit} or raise max_assignments"
        )
    # --- scores (N, M): log p(candidate m | example) ------------------------------------------------
    sequences = None if candidates is None else _sequences(tok, words, space)
    precision = resolve_precision(mixed_precision, backbone.device)
    with (
        frozen_weights_cast(backbone.model, backbone.device, precision),
        autocast(backbone.device, precision),
    ):
        if candidates is None:
            ids = torch.tensor(pool, device=backbone.device)
            scores = torch.cat(
                [
                    slot_log_probs(backbone, template, b, max_length)[:, ids].cpu()
                    for b in _batches(columns, batch_size)
                ]
            )  # (N, M)
        else:
            scores = torch.cat(
                [
                    word_log_probs(backbone, template, b, sequences, max_length, batch_size).cpu()
                    for b in _batches(columns, batch_size)
                ]
            )  # (N, M)
    scores = scores.float()
    # --- step 1: top-k per class by summed log-probability over the class's examples ---------------
    top: dict[str, list[int]] = {}
    found: dict[str, list[tuple[str, float]]] = {}
    for c, name in enumerate(names):
        allowed = torch.tensor(per_class[name])
        summed = scores[y == c][:, allowed].sum(0)  # (|allowed|,)
        best = summed.topk(width[name])  # sorted, largest first
        top[name] = allowed[best.indices].tolist()
        found[name] = [(words[m], float(s)) for m, s in zip(top[name], best.values.tolist())]
    # --- step 2: every assignment, by zero-shot accuracy on the training examples -----------------
    lengths = [1] * len(words) if candidates is None else [len(s) for s in sequences]
    ranked = _rank_assignments(scores, y, [top[c] for c in names], n)
    out = [
        ScoredVerbalizer(_verbalizer(names, [words[m] for m in a], any(lengths[m] > 1 for m in a)), acc, ll)
        for a, acc, ll in ranked
    ]
    if not out:
        raise LabelWordError(
            "every assignment gives two classes the same word; raise k or give distinct candidates"
        )
    return LabelWordSearch(names, found, out)


def _given_candidates(candidates, names: list[str]) -> tuple[list[str], dict[str, list[int]]]:
    """The distinct candidate words, and which of them each class may take."""
    if isinstance(candidates, str):
        raise LabelWordError("candidates is one string; pass a list of words, or a dict class → words")
    if isinstance(candidates, Mapping):
        unknown = [c for c in candidates if c not in names]
        missing = [c for c in names if c not in candidates]
        if unknown or missing:
            raise LabelWordError(
                f"candidates must have one entry per class {names}: unknown {unknown}, missing {missing}"
            )
        lists = {c: [candidates[c]] if isinstance(candidates[c], str) else list(candidates[c]) for c in names}
    else:
        lists = {c: list(candidates) for c in names}
    words: list[str] = []
    for c in names:
        bad = [w for w in lists[c] if not isinstance(w, str) or not w.strip()]
        if bad or not lists[c]:
            raise LabelWordError(f"class {c!r} needs non-empty candidate words (strings), got {lists[c]!r}")
        words += [w.strip() for w in lists[c] if w.strip() not in words]
    return words, {c: [words.index(w) for w in dict.fromkeys(w.strip() for w in lists[c])] for c in names}


def _sequences(tok, words: list[str], space_before: bool) -> list[list[int]]:
    """Each candidate's token ids as it stands in the slot (after its space, if the template has one)."""
    out = []
    for w in words:
        ids = tok((" " if space_before else "") + w, add_special_tokens=False)["input_ids"]
        if not ids or (tok.unk_token_id is not None and tok.unk_token_id in ids):
            raise LabelWordError(
                f"candidate {w!r} is {'no token' if not ids else 'partly the unknown token'} "
                "for this tokenizer; choose words in its vocabulary"
            )
        out.append(list(ids))
    return out


def _rank_assignments(
    scores: torch.Tensor, y: torch.Tensor, top: list[list[int]], n: int, chunk: int = 4096
) -> list[tuple[list[int], float, float]]:
    """The best ``n`` assignments (one column of ``scores (N, M)`` per class) by accuracy, then likelihood."""
    kept: list[tuple[float, float, list[int]]] = []
    product = itertools.product(*top)
    while True:
        block = [a for a in itertools.islice(product, chunk)]
        if not block:
            break
        block = [a for a in block if len(set(a)) == len(a)]  # one word, one class
        if not block:
            continue
        idx = torch.tensor(block)  # (m, C)
        s = scores[:, idx]  # (N, m, C)
        acc = (s.argmax(-1) == y[:, None]).float().mean(0)  # (m,)
        gold = y[:, None, None].expand(-1, len(block), 1)  # (N, m, 1)
        ll = torch.log_softmax(s, -1).gather(-1, gold)[..., 0].mean(0)  # (m,)
        kept += [(float(a_), float(l_), list(a)) for a_, l_, a in zip(acc, ll, block)]
        kept.sort(key=lambda t: (-t[0], -t[1]))
        kept = kept[:n]
    return [(a, acc, ll) for acc, ll, a in kept]


def _verbalizer(names: list[str], words: list[str], multi: bool) -> Verbalizer:
    return Verbalizer(dict(zip(names, words)), multi_token="sum" if multi else "error")
