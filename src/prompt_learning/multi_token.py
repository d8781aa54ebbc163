"""Label words of several tokens, scored whole: the log-probability of the word in the answer slot.

A label word such as " the economy" or "terrific" may be several tokens. Scoring it by its first
token (``multi_token="first"``) throws the rest away; here every token counts:

* **causal LM** — the log-probability of the continuation, the sum of per-token log-probabilities,
  each token conditioned on the prompt and the tokens before it
  (:func:`continuation_logprob`): ``log p(w_1 … w_L | x) = Σ_t log p(w_t | x, w_<t)``;
* **masked LM** — PET with multiple masks (Schick & Schütze 2021, "It's Not Just Size That Matters:
  Small Language Models Are Also Few-Shot Learners", §3.2): the slot holds as many masks as the word
  has tokens; the mask whose token the model is most sure of is filled first, then the next, and the
  score is the sum of the log-probabilities met on the way (:func:`masked_span_logprob`).

For a one-token word both are the log-softmax of the slot's logits, so a verbalizer of one-token
words ranks classes exactly as :class:`~prompt_learning.cloze.ClozeClassifier` does. A longer word
collects more (negative) terms: comparing words of different lengths favours the shorter one, a
property of the sum, not of the code.

:class:`MultiTokenCloze` is the cloze classifier for a ``Verbalizer(..., multi_token="sum")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .backbones import Backbone
from .cloze import ClozeClassifier
from .method import InputError, check_inputs
from .positions import position_ids
from .readout import answer_logits, check_lm_backbone, masked_lm_logits_at
from .templates import Template, pad_ids, special_tokens_around
from .verbalizers import Verbalizer


class MultiTokenError(InputError):
    """Inputs the multi-token scorers cannot take; the message names the fix."""


def _ids(tokenizer, item: str | Sequence[int], what: str, i: int) -> list[int]:
    if isinstance(item, str):
        return list(tokenizer(item, add_special_tokens=False)["input_ids"])
    if not all(isinstance(t, int) for t in item):
        raise MultiTokenError(f"{what}[{i}] must be a string or a list of token ids, got {item!r}")
    return list(item)


def _padded(
    tokenizer, rows: Sequence[Sequence[int]], left: bool, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` ``(B, T)`` of token-id rows, on ``device`` (:func:`pad_ids`)."""
    b = pad_ids(rows, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0, left)
    return b["input_ids"].to(device), b["attention_mask"].to(device)


def is_causal(model) -> bool:
    """Whether ``model`` predicts left to right (a ``…ForCausalLM`` / ``…LMHeadModel``)."""
    name = type(model).__name__
    return "CausalLM" in name or "LMHead" in name or bool(getattr(model.config, "is_decoder", False))


def continuation_logprob(
    model,
    tokenizer,
    prefixes: Sequence[str | Sequence[int]],
    continuations: Sequence[str | Sequence[int]],
    batch_size: int = 32,
) -> torch.Tensor:
    """``log p(continuation | prefix)`` ``(N,)`` under a causal LM: the sum of per-token log-probabilities.

    Args:

    - ``model``: a causal LM (GPT-2, Llama, SmolLM2).
    - ``tokenizer``: its tokenizer.
    - ``prefixes``: ``N`` prompts, as text (the tokenizer's leading special tokens are added, as a
      template's encoding adds them) or as token ids (used as given).
    - ``continuations``: ``N`` continuations, as text (tokenised as written: include the leading
      space a BPE word needs, " great") or as token ids.
    - ``batch_size``: pairs per forward pass.

    Input: N (prefix, continuation) pairs. Each pair is one row ``prefix + continuation`` of a
    left-padded batch; the logits at the last ``L_max + 1`` positions (``logits_to_keep``) give every
    continuation token its log-probability. Output: ``(N,)`` fp32, differentiable (no ``no_grad`` inside).
    """
    if len(prefixes) != len(continuations):
        raise MultiTokenError(
            f"{len(prefixes)} prefixes but {len(continuations)} continuations: pass one "
            "continuation per prefix (repeat a prefix to score several)"
        )
    if not is_causal(model):
        raise MultiTokenError(
            f"continuation_logprob reads a causal LM, got {type(model).__name__}; for a "
            "masked LM use masked_span_logprob (PET's multiple masks)"
        )
    head, _ = special_tokens_around(tokenizer)
    pre = [
        head + _ids(tokenizer, p, "prefixes", i) if isinstance(p, str) else _ids(tokenizer, p, "prefixes", i)
        for i, p in enumerate(prefixes)
    ]
    cont = [_ids(tokenizer, c, "continuations", i) for i, c in enumerate(continuations)]
    for i, (p, c) in enumerate(zip(pre, cont)):
        if not c:
            raise MultiTokenError(f"continuations[{i}] has no tokens: give each a word or phrase")
        if not p:
            raise MultiTokenError(
                f"prefixes[{i}] has no tokens, so nothing predicts the first continuation "
                "token; start it with text (or the tokenizer's BOS id)"
            )
    device = model.get_input_embeddings().weight.device
    out = []
    for s in range(0, len(pre), batch_size):
        rows = [p + c for p, c in zip(pre[s : s + batch_size], cont[s : s + batch_size])]
        lengths = [len(c) for c in cont[s : s + batch_size]]
        keep = max(lengths) + 1
        ids, mask = _padded(tokenizer, rows, True, device)  # left padding: every row ends at the last column
        width = ids.shape[1]
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids(mask),
            logits_to_keep=keep,
            use_cache=False,
        ).logits  # (b, keep, V)
        logp = torch.log_softmax(logits.float(), dim=-1)
        for i, n in enumerate(lengths):
            # column j of logp predicts the token at absolute column width - keep + j + 1
            targets = ids[i, width - n :]  # (n,)
            steps = logp[i, keep - 1 - n : keep - 1]  # (n, V): the positions that predict them
            out.append(steps.gather(-1, targets[:, None]).sum())
    return torch.stack(out)  # (N,)


def masked_span_logprob(
    model,
    tokenizer,
    before: Sequence[Sequence[int]],
    after: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    batch_size: int = 32,
) -> torch.Tensor:
    """PET's multi-mask score ``(N,)`` of ``continuations`` in a masked LM's answer slot.

    Row ``i`` is ``before[i] + [MASK] × L_i + after[i]`` (token ids, special tokens included) with
    ``L_i = len(continuations[i])``. At each of ``L_i`` steps the model predicts every remaining
    mask; the mask whose target token has the highest log-probability is filled with that token and
    its log-probability added (Schick & Schütze 2021, §3.2). ``L_i = 1`` is the plain cloze:
    the log-softmax at the mask. Output: ``(N,)`` fp32 sums; ``L_max`` forward passes per batch.
    """
    if not len(before) == len(after) == len(continuations):
        raise MultiTokenError(
            f"before, after and continuations must have one entry per example, got "
            f"{len(before)}, {len(after)} and {len(continuations)}"
        )
    if tokenizer.mask_token_id is None:
        raise MultiTokenError("this tokenizer has no mask token: masked_span_logprob needs a masked LM")
    if any(len(c) == 0 for c in continuations):
        raise MultiTokenError("a continuation has no tokens: give each a word or phrase")
    device = model.get_input_embeddings().weight.device
    out = []
    for s in range(0, len(before), batch_size):
        chunk = range(s, min(s + batch_size, len(before)))
        rows = [
            list(before[i]) + [tokenizer.mask_token_id] * len(continuations[i]) + list(after[i])
            for i in chunk
        ]
        ids, mask = _padded(tokenizer, rows, False, device)  # right padding, as a masked LM's batches are
        # (example, slot position, target token) for every mask still open
        open_ = [
            [(len(before[i]) + j, continuations[i][j]) for j in range(len(continuations[i]))] for i in chunk
        ]
        total = [torch.zeros((), device=device) for _ in chunk]
        while any(open_):
            rows_i = [b for b, o in enumerate(open_) for _ in o]
            pos = [p for o in open_ for p, _ in o]
            tgt = [t for o in open_ for _, t in o]
            logits = masked_lm_logits_at(
                model, ids, mask, torch.tensor(pos, device=device), rows=torch.tensor(rows_i, device=device)
            )  # (M, V): every open mask
            logp = torch.log_softmax(logits.float(), dim=-1).gather(
                -1, torch.tensor(tgt, device=device)[:, None]
            )[:, 0]
            ids = ids.clone()
            k = 0
            for b, o in enumerate(open_):
                if not o:
                    continue
                here = logp[k : k + len(o)]  # (len(o),)
                j = int(here.argmax())  # the most confident mask goes first
                total[b] = total[b] + here[j]
                ids[b, o[j][0]] = o[j][1]
                k += len(o)
                open_[b] = o[:j] + o[j + 1 :]
        out.extend(total)
    return torch.stack(out)  # (N,)


def slot_log_probs(
    backbone: Backbone, template: Template, columns: dict[str, list[str]], max_length: int = 128
) -> torch.Tensor:
    """Log-softmax over the vocabulary in the answer slot ``(B, V)``, fp32 (one forward pass)."""
    causal = backbone.kind == "causal-lm"
    b = {
        k: v.to(backbone.device)
        for k, v in template.encode(backbone.tokenizer, columns, max_length, causal=causal).items()
    }
    logits = answer_logits(backbone.model, causal, b["input_ids"], b["attention_mask"], b["mask_pos"])
    return torch.log_softmax(logits.float(), dim=-1)  # (B, V)


def word_log_probs(
    backbone: Backbone,
    template: Template,
    columns: dict[str, list[str]],
    sequences: Sequence[Sequence[int]],
    max_length: int = 128,
    batch_size: int = 32,
) -> torch.Tensor:
    """``log p(word | example)`` ``(B, W)`` for ``W`` label words given as token-id sequences.

    One-token words are read from one forward pass (:func:`slot_log_probs`); when a word is longer,
    every (example, word) pair is scored whole: :func:`continuation_logprob` for a causal LM,
    :func:`masked_span_logprob` (PET's multiple masks) for a masked LM.
    """
    check_lm_backbone(backbone, template, "scoring label words", MultiTokenError)
    if any(len(s) == 0 for s in sequences):
        raise MultiTokenError("a label word has no tokens: give each a word or phrase")
    if all(len(s) == 1 for s in sequences):
        return slot_log_probs(backbone, template, columns, max_length)[:, [s[0] for s in sequences]]  # (B, W)
    tok, causal = backbone.tokenizer, backbone.kind == "causal-lm"
    longest = max(len(s) for s in sequences)
    room = max_length if causal else max_length - (longest - 1)  # the extra masks must fit too
    if room < 2:
        raise MultiTokenError(f"max_length={max_length} leaves no room for {longest} masks; raise max_length")
    rows = template.rows(tok, columns, room, causal=causal)
    B, W = len(rows), len(sequences)
    if causal:  # each prompt read once; every word continues it from the cache
        return torch.cat(
            [
                cached_continuations(
                    backbone.model, tok, [ids for ids, _, _ in rows[s : s + batch_size]], sequences
                )
                for s in range(0, B, batch_size)
            ]
        )  # (B, W)
    pairs = [(ids, pos, list(seq)) for ids, _, pos in rows for seq in sequences]  # example-major: PET's masks
    scores = masked_span_logprob(
        backbone.model,
        tok,
        [ids[:pos] for ids, pos, _ in pairs],
        [ids[pos + 1 :] for ids, pos, _ in pairs],
        [p[2] for p in pairs],
        batch_size,
    )
    return scores.view(B, W)


def cached_continuations(
    model, tokenizer, prompts: Sequence[Sequence[int]], sequences: Sequence[Sequence[int]]
) -> torch.Tensor:
    """``log p(word | prompt)`` ``(B, W)`` for every prompt and word, the prompts run once.

    The same sums as :func:`continuation_logprob` on every (prompt, word) pair, computed the way a
    decoder generates: one forward pass over the ``B`` left-padded prompts fills the key/value cache
    and gives every word's first token; a word of ``L`` tokens then costs one pass over its other
    ``L − 1`` tokens from that cache, after which the cache is cut back to the prompts. ``B × W``
    rows of prompt become ``B`` rows plus ``B × (L − 1)`` tokens per long word. Differentiable, as
    :func:`continuation_logprob` is (PET can train through it).
    """
    device = model.get_input_embeddings().weight.device
    ids, mask = _padded(
        tokenizer, prompts, True, device
    )  # left padding: every prompt ends at the last column
    positions = position_ids(mask)  # (B, T)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V): every word's first token
    cache = out.past_key_values
    scores = []
    for seq in sequences:
        score = first[:, seq[0]]  # (B,)
        if len(seq) > 1:
            rest = torch.tensor(list(seq), device=device).expand(len(prompts), -1)  # (B, L)
            steps = torch.arange(1, len(seq), device=device)
            more = model(
                input_ids=rest[:, :-1],
                attention_mask=torch.cat([mask, torch.ones_like(rest[:, 1:])], 1),
                position_ids=positions[:, -1:] + steps,
                past_key_values=cache,
                use_cache=True,
            ).logits  # (B, L − 1, V): predicts tokens 2 … L
            logp = torch.log_softmax(more.float(), dim=-1).gather(-1, rest[:, 1:, None])[..., 0]  # (B, L − 1)
            score = score + logp.sum(-1)
            cache.crop(-(len(seq) - 1))  # back to the prompts alone
        scores.append(score)
    return torch.stack(scores, dim=-1)  # (B, W)


class MultiTokenCloze(ClozeClassifier):
    """A cloze classifier whose label words may be several tokens, each scored whole.

    A class's score is the mean over its words of ``log p(word | template(x))``
    (:func:`word_log_probs`); with one-token words the class ranking equals
    :class:`~prompt_learning.cloze.ClozeClassifier`'s.

    >>> clf = MultiTokenCloze(load_backbone("tiny-gpt2"), "{text} It was {mask}.",
    ...                       Verbalizer({"negative": "not good", "positive": "really good"}, multi_token="sum"))
    >>> clf(["a fine film"]).shape
    torch.Size([1, 2])

    Input: texts (B). Forward passes: one if every word is one token; else ``B × W`` rows (causal LM,
    one pass per batch) or ``L_max`` passes over them (masked LM). Output: class log-probabilities (B, C).
    """

    error_class = MultiTokenError

    def answer_ids(self, verbalizer: Verbalizer) -> list[list[int]]:
        """Every label word's whole token sequence, class-major (several tokens allowed)."""
        self.sequences = verbalizer.token_sequences(self.tokenizer, space_before=self.template.mask_space)
        return self.sequences

    def logits(self, columns: dict[str, list[str]]) -> torch.Tensor:
        flat = [s for seqs in self.sequences for s in seqs]
        scores = word_log_probs(self.backbone, self.template, columns, flat, self.config.max_length)  # (B, W)
        return self.verbalizer.class_logits(scores, self.verbalizer.word_index())  # (B, C)

    def word_scores(self, texts) -> torch.Tensor:
        """``log p(word | template(x))`` ``(B, W)`` for every label word (class-major order)."""
        flat = [s for seqs in self.sequences for s in seqs]
        return word_log_probs(
            self.backbone, self.template, check_inputs(texts, self.text_columns), flat, self.config.max_length
        )
