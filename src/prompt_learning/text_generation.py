"""Conditional generation with a frozen language model: the loss, greedy decoding, ROUGE.

Generation methods (prefix tuning, prompt tuning for generation) share this plumbing:

* :func:`encode_pairs` puts each source and its target in one row (causal LM) or in two
  (encoder-decoder), with labels only on the target tokens;
* ``lm_loss`` is teacher-forced cross-entropy on the target tokens, with the LM head applied
  to those positions only (the 49k-word head over every position is most of the cost);
* :func:`greedy_generate` decodes with a cache; a key/value prefix is present from the first
  step, soft input embeddings are part of the first (prefill) step;
* :func:`rouge` scores generations with Google's ``rouge-score`` package (Lin 2004).

Prompt tuning for generation is :class:`~prompt_learning.soft_prompts.PromptTuning` built without a
template: trainable input embeddings before the text, the input-level baseline of chapter 7.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, EncoderDecoderCache

from .errors import InputError
from .kv_prefix import KVPrefix, check_length, prefixed_forward
from .templates import pad_ids

IGNORE = -100  # label of positions that carry no loss


def truncate_tokens(tokenizer, text: str, n: int) -> str:
    """``text`` cut to its first ``n`` tokens (e.g. an article body to fit a CPU budget)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= n else tokenizer.decode(ids[:n]).strip()


def encode_pairs(
    tokenizer,
    sources: list[str],
    targets: list[str] | None,
    *,
    seq2seq: bool,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Token ids for (source, target) pairs; ``targets=None`` encodes sources for generation.

    Causal LM: one left-padded row ``source + target`` with ``labels`` on the target tokens.
    Encoder-decoder: ``input_ids`` for the encoder (with the tokenizer's special tokens) and
    ``labels`` (the target, right-padded with ``-100``).
    """
    if targets is not None and len(targets) != len(sources):
        raise InputError(f"{len(sources)} sources but {len(targets)} targets: pass one target per source")
    src = [tokenizer(s, add_special_tokens=seq2seq)["input_ids"] for s in sources]
    tgt = [tokenizer(t, add_special_tokens=seq2seq)["input_ids"] for t in targets] if targets else None
    if seq2seq:
        out = pad_ids(src, tokenizer.pad_token_id, left=False)
        if tgt is not None:
            out["labels"] = pad_ids(tgt, IGNORE, left=False)["input_ids"]
    else:
        rows = [s + (tgt[i] if tgt else []) for i, s in enumerate(src)]
        out = pad_ids(rows, tokenizer.pad_token_id, left=True)
        if tgt is not None:
            labels = torch.full_like(out["input_ids"], IGNORE)
            for i, t in enumerate(tgt):
                labels[i, out["input_ids"].shape[1] - len(t) :] = torch.tensor(t)
            out["labels"] = labels
    return {k: v.to(device) for k, v in out.items()}


def lm_loss(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    prefix: KVPrefix | None = None,
    soft_prompt: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the target tokens given the source (teacher forcing).

    ``soft_prompt`` ``(P, H)``: input embeddings placed before every row (causal LMs only).
    """
    if model.config.is_encoder_decoder:
        return prefixed_forward(
            model, prefix, batch["input_ids"], batch["attention_mask"], labels=batch["labels"]
        ).loss
    embeds, mask = _embed(model, batch["input_ids"], batch["attention_mask"], soft_prompt)
    labels = batch["labels"]
    if soft_prompt is not None:
        labels = F.pad(labels, (soft_prompt.shape[0], 0), value=IGNORE)  # (B, P+T)
    hidden = prefixed_forward(
        model.base_model, prefix, inputs_embeds=embeds, attention_mask=mask
    ).last_hidden_state  # (B, P+T, H)
    nxt = labels[:, 1:]  # (B, P+T-1): the token each position predicts
    keep = nxt != IGNORE
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])  # (N, V): target positions only
    return F.cross_entropy(logits.float(), nxt[keep])


def _embed(
    model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, soft_prompt: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input embeddings ``(B, P+T, H)`` with the soft prompt in front, and the widened mask."""
    embeds = model.get_input_embeddings()(ids)  # (B, T, H)
    if soft_prompt is None:
        return embeds, mask
    soft = soft_prompt.to(embeds.dtype).unsqueeze(0).expand(ids.shape[0], -1, -1)  # (B, P, H)
    return torch.cat([soft, embeds], 1), F.pad(mask, (soft_prompt.shape[0], 0), value=1)


@torch.no_grad()
def greedy_generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prefix: KVPrefix | None = None,
    soft_prompt: torch.Tensor | None = None,
    max_new_tokens: int = 20,
    stop_ids: frozenset[int] = frozenset(),
    pad_id: int = 0,
) -> torch.Tensor:
    """New token ids ``(B, N)``, greedy, with a cache; rows that stopped are padded with ``pad_id``.

    Causal LM: ``input_ids`` left-padded. Encoder-decoder: the encoder runs once (with its prefix),
    the decoder starts from ``decoder_start_token_id``.
    """
    batch = input_ids.shape[0]
    seq2seq = bool(model.config.is_encoder_decoder)
    p = prefix.length if prefix is not None else 0
    shift = prefix.shift_positions if prefix is not None else True
    extra = soft_prompt.shape[0] if soft_prompt is not None else 0
    check_length(model, p, (0 if seq2seq else input_ids.shape[1] + extra) + max_new_tokens, shift)
    cfg = model.config
    if seq2seq:
        cache = EncoderDecoderCache(DynamicCache(config=cfg), DynamicCache(config=cfg))
        enc = prefixed_forward(model.get_encoder(), prefix, input_ids, attention_mask)
        start = torch.full((batch, 1), cfg.decoder_start_token_id, device=input_ids.device)
        step = dict(encoder_outputs=enc, attention_mask=attention_mask, decoder_input_ids=start)
    else:
        cache = DynamicCache(config=cfg)
        embeds, attention_mask = _embed(model, input_ids, attention_mask, soft_prompt)
        step = dict(inputs_embeds=embeds, attention_mask=attention_mask)
    done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    stop = torch.tensor(sorted(stop_ids), dtype=torch.long, device=input_ids.device)
    keep = {} if seq2seq else {"logits_to_keep": 1}
    out = []
    for _ in range(max_new_tokens):
        logits = prefixed_forward(model, prefix, **step, cache=cache, use_cache=True, **keep).logits
        nxt = logits[:, -1].argmax(-1).masked_fill(done, pad_id)  # (B,)
        out.append(nxt)
        done |= torch.isin(nxt, stop)
        if done.all():
            break
        if seq2seq:
            step["decoder_input_ids"] = nxt[:, None]
        else:
            mask = torch.cat([step["attention_mask"], torch.ones_like(nxt)[:, None]], 1)  # (B, T+1)
            step = dict(input_ids=nxt[:, None], attention_mask=mask)
    return torch.stack(out, 1)  # (B, N)


@lru_cache(maxsize=8)
def _newline_ids(tokenizer) -> frozenset[int]:
    return frozenset(i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i]))


def stop_token_ids(tokenizer, newline: bool = True) -> frozenset[int]:
    """End-of-sequence id, and every token that contains a newline when ``newline``."""
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    return frozenset(eos) | (_newline_ids(tokenizer) if newline else frozenset())


def decode(tokenizer, ids: torch.Tensor, newline: bool = True) -> list[str]:
    """Generated ids → text, cut at the first newline (when ``newline``) and stripped."""
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [(t.split("\n")[0] if newline else t).strip() for t in texts]


def rouge(predictions: list[str], references: list[str], per_item: bool = False) -> dict:
    """Mean ROUGE-1/2/L F1 (stemmed), with the ``rouge-score`` package; with ``per_item``, each
    key maps to the ``(N,)`` array of per-item F1 instead (for
    :func:`~prompt_learning.stats.paired_scores`)."""
    import numpy as np
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p) for p, r in zip(predictions, references, strict=True)]
    keys = ("rouge1", "rouge2", "rougeL")
    items = {k: np.array([s[k].fmeasure for s in scores]) for k in keys}  # (N,) each
    return items if per_item else {k: float(v.mean()) if v.size else 0.0 for k, v in items.items()}


def generation_loss(method: nn.Module, batch: dict) -> torch.Tensor:
    """``loss_fn`` for :func:`prompt_learning.training.fit` on ``source``/``target`` columns."""
    return method.lm_loss(batch["source"], batch["target"])
