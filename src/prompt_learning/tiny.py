"""Tiny random backbones for tests: real architectures, a few thousand parameters, built offline.

Each preset builds a model from a config (seeded, so two builds are identical) and a real
tokenizer trained on a small built-in word list: WordPiece for BERT, byte-level BPE (with the
leading-space ``Ġ`` subtlety of GPT-2/RoBERTa) for the others. Like minGPT's ``gpt-nano``.
"""

from __future__ import annotations

import functools
import json

import torch
from tokenizers import AddedToken, ByteLevelBPETokenizer
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForMaskedLM,
    BertTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Tokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaTokenizer,
)

WORDS = (
    "the a an it was is were be this that i you he she they we my your film movie story plot "
    "actor actors scene music great good wonderful fine terrible bad awful boring dull fun "
    "like love hate liked loved very much not really so too and but or of to in on at for with "
    "review sentiment positive negative topic sport business politics tech entertainment "
    "news headline article team game market company government minister phone music show "
    "yes no true false one two three . , ! ? : ' \" -"
).split()

# shape of each preset: tiny but with every feature the library must handle
TINY = ("tiny-bert", "tiny-roberta", "tiny-gpt2", "tiny-llama", "tiny-bart")
_DIM = dict(hidden=32, layers=2, heads=4, ffn=64, positions=128)


def _bert_tokenizer() -> BertTokenizer:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(WORDS)))}
    return BertTokenizer(vocab=vocab)


def rotations(words: list[str]) -> list[str]:
    """Each word list rotated once per word, joined: every word follows a space somewhere."""
    return [" ".join(words[i:] + words[:i]) for i in range(len(words))]


def byte_bpe(cls, specials: list[str], corpus: list[str], vocab_size: int, **kwargs):
    """A byte-level BPE tokenizer of class ``cls`` (GPT-2 / RoBERTa style) trained on ``corpus``.

    The training is done once per process and corpus (:func:`_trained_bpe`); each call builds a
    fresh tokenizer from it, so callers may change theirs (a pad token, a chat template).
    """
    vocab, merges = _trained_bpe(tuple(specials), tuple(corpus), vocab_size)
    return cls(vocab=dict(vocab), merges=list(merges), **kwargs)


@functools.cache
def _trained_bpe(specials: tuple[str, ...], corpus: tuple[str, ...], vocab_size: int):
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(corpus),
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(specials),
        show_progress=False,
    )
    merges = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" "))
        for m in json.loads(bpe.to_str())["model"]["merges"]
    ]
    return tuple(bpe.get_vocab().items()), tuple(merges)


def _bpe(cls, specials: list[str], **kwargs):
    return byte_bpe(cls, specials, rotations(WORDS), 1000, **kwargs)


def build_tiny(name: str):
    """(model, tokenizer) for one of ``TINY``; same weights on every call."""
    d = _DIM
    torch.manual_seed(0)
    if name == "tiny-bert":
        tok = _bert_tokenizer()
        cfg = BertConfig(
            vocab_size=len(tok),
            hidden_size=d["hidden"],
            num_hidden_layers=d["layers"],
            num_attention_heads=d["heads"],
            intermediate_size=d["ffn"],
            max_position_embeddings=d["positions"],
        )
        return BertForMaskedLM(cfg).eval(), tok
    if name in ("tiny-roberta", "tiny-bart"):
        # like roberta-base: "<mask>" swallows the space before it, so " great" fills it
        tok = _bpe(
            RobertaTokenizer,
            ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
            mask_token=AddedToken("<mask>", lstrip=True, rstrip=False),
        )
        if name == "tiny-roberta":
            cfg = RobertaConfig(
                vocab_size=len(tok),
                hidden_size=d["hidden"],
                num_hidden_layers=d["layers"],
                num_attention_heads=d["heads"],
                intermediate_size=d["ffn"],
                max_position_embeddings=d["positions"] + 2,
                pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
            )
            return RobertaForMaskedLM(cfg).eval(), tok
        cfg = BartConfig(
            vocab_size=len(tok),
            d_model=d["hidden"],
            encoder_layers=d["layers"],
            decoder_layers=d["layers"],
            encoder_attention_heads=d["heads"],
            decoder_attention_heads=d["heads"],
            encoder_ffn_dim=d["ffn"],
            decoder_ffn_dim=d["ffn"],
            max_position_embeddings=d["positions"],
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.eos_token_id,
            forced_eos_token_id=None,
        )
        return BartForConditionalGeneration(cfg).eval(), tok
    if name in ("tiny-gpt2", "tiny-llama"):
        tok = _bpe(
            GPT2Tokenizer,
            ["<|endoftext|>"],
            unk_token="<|endoftext|>",
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
        )
        tok.pad_token = tok.eos_token
        if name == "tiny-gpt2":
            cfg = GPT2Config(
                vocab_size=len(tok),
                n_embd=d["hidden"],
                n_layer=d["layers"],
                n_head=d["heads"],
                n_positions=d["positions"],
                bos_token_id=tok.eos_token_id,
                eos_token_id=tok.eos_token_id,
            )
            return GPT2LMHeadModel(cfg).eval(), tok
        # grouped-query attention: 4 query heads share 2 key/value heads, like SmolLM2's 9 over 3
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=d["hidden"],
            num_hidden_layers=d["layers"],
            num_attention_heads=d["heads"],
            num_key_value_heads=d["heads"] // 2,
            intermediate_size=d["ffn"],
            max_position_embeddings=d["positions"],
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            tie_word_embeddings=True,
        )
        return LlamaForCausalLM(cfg).eval(), tok
    raise KeyError(name)
