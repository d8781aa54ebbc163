"""A Hugging Face hub cache of tiny random stand-ins, to rehearse the hub profiles with no hub.

:func:`build_hub_cache` writes the layout ``huggingface_hub`` reads from ``$HF_HOME``
(``hub/models--<org>--<name>/refs/main`` and ``snapshots/<commit>/…``) for every hub id the
profiles use, under the real ids. Each repository holds a random model of the real one's
architecture class and shape ratios (SmolLM2: ``LlamaForCausalLM`` with its query / key-value
heads, tied embeddings, ChatML special tokens and chat template; RoBERTa: ``RobertaForMaskedLM``
with byte-level BPE and ``<mask>``; bert-base-chinese: ``BertForMaskedLM`` with a WordPiece
vocabulary holding the whole CJK Unified Ideographs block), but two layers of width 32–48. With
``HF_HOME=DIR HF_HUB_OFFLINE=1`` every ``from_pretrained(id)`` of the ``gpu`` and ``t4`` profiles
loads from it: the chapters' hub-only code runs end to end (``PROMPT_LEARNING_PROFILE=rehearsal``,
``make rehearse``). The numbers it produces mean nothing; each snapshot's README says so.

Command line::

    python -m prompt_learning.rehearsal build DIR   # then export the lines it prints
    python -m prompt_learning.rehearsal check DIR   # load every id from DIR in a fresh process
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertTokenizer,
    GPT2Tokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaTokenizer,
)
from transformers.utils import logging as hf_logging

from .artifacts import write_folder
from .errors import PromptLearningError
from .profiles import PROFILES
from .tiny import WORDS, byte_bpe, rotations

FORMAT = 1  # bump when the stand-ins change: a cache of another format is rebuilt
MARKER = "prompt-learning-rehearsal.json"  # in DIR: what was built (and that DIR is ours to replace)


@dataclass(frozen=True)
class StandIn:
    """A tiny model of one hub repository's family, with that repository's head layout."""

    family: str  # "smollm2" | "roberta" | "bert-chinese"
    hidden: int
    heads: int
    kv_heads: int  # as the real config's ratio: SmolLM2-1.7B 32/32, -360M 15/5, -135M 9/3
    intermediate: int
    positions: int  # max_position_embeddings of the real config
    rope_theta: float = 10000.0
    layers: int = 2


HUB_STANDINS: dict[str, StandIn] = {
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": StandIn("smollm2", 32, 4, 4, 128, 8192, rope_theta=130000.0),
    "HuggingFaceTB/SmolLM2-360M-Instruct": StandIn("smollm2", 48, 6, 2, 128, 8192, rope_theta=100000.0),
    "HuggingFaceTB/SmolLM2-135M-Instruct": StandIn("smollm2", 48, 6, 2, 128, 8192, rope_theta=100000.0),
    "roberta-large": StandIn("roberta", 32, 4, 4, 128, 514),
    "roberta-base": StandIn("roberta", 32, 4, 4, 128, 514),
    "bert-base-chinese": StandIn("bert-chinese", 32, 4, 4, 128, 512),
}

# words the chapters put in templates and verbalizers: each is one token, with and without a space before
CHAPTER_WORDS = (
    "terrible great negative positive bad good No Yes no yes awful excellent poor business entertainment "
    "politics sport tech Review Sentiment Opinion It was is This movie film Overall overall felt All all in "
    "In short The critic verdict Movie review Did like the Is or Answer Text Question topic Topic Article "
    "Headline Write a short headline for this news article Which about Summarize one sentiment"
).split()
SMOLLM2_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<repo_name>",
    "<reponame>",
    "<file_sep>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<jupyter_script>",
    "<empty_output>",
]
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CJK_PUNCTUATION = "，。！？、；：“”‘’（）《》【】「」…—·～"


class RehearsalError(PromptLearningError, RuntimeError):
    """A rehearsal cache that cannot be built or does not load; the message names the fix."""


def hub_ids() -> list[str]:
    """Every hub id a profile loads (the ones with ``hub=True``), in profile order."""
    ids = [
        getattr(p, f)
        for p in PROFILES.values()
        if p.hub
        for f in ("causal_lm", "encoder", "masked_lm", "chinese_mlm")
        if getattr(p, f)
    ]
    return list(dict.fromkeys(ids))


def _byte_bpe(cls, specials: list[str], **kwargs):
    """A byte-level BPE (GPT-2 / RoBERTa style) in which every chapter word is a single token."""
    words = sorted(set(WORDS) | set(CHAPTER_WORDS))
    return byte_bpe(cls, specials, rotations(words) + words * 4, 4000, **kwargs)  # " word" and "word"


@functools.cache
def _tokenizer(family: str):
    if family == "smollm2":
        tok = _byte_bpe(
            GPT2Tokenizer,
            SMOLLM2_SPECIALS,
            unk_token="<|endoftext|>",
            bos_token="<|im_start|>",
            eos_token="<|im_end|>",
            pad_token="<|im_end|>",
            add_prefix_space=False,
        )
        tok.chat_template = SMOLLM2_CHAT_TEMPLATE
        return tok
    if family == "roberta":  # "<mask>" swallows the space before it, so " great" fills it
        return _byte_bpe(
            RobertaTokenizer,
            ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
            mask_token=AddedToken("<mask>", lstrip=True, rstrip=False),
        )
    if family == "bert-chinese":  # bert-base-chinese's special ids: [PAD] 0, [UNK] 100, [CLS] 101 …
        specials = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        ascii_ = [chr(c) for c in range(33, 127)]
        pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
        cjk = [chr(c) for c in range(0x4E00, 0xA000)]  # CJK Unified Ideographs, U+4E00–U+9FFF
        vocab = list(dict.fromkeys(specials + list(CJK_PUNCTUATION) + ascii_ + pieces + cjk))
        return BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=False)
    raise KeyError(family)


def _model(spec: StandIn, tok, seed: int):
    torch.manual_seed(seed)
    common = dict(
        vocab_size=len(tok),
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.intermediate,
        max_position_embeddings=spec.positions,
    )
    if spec.family == "smollm2":
        cfg = LlamaConfig(
            **common,
            num_key_value_heads=spec.kv_heads,
            rope_theta=spec.rope_theta,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        return LlamaForCausalLM(cfg)
    if spec.family == "roberta":
        cfg = RobertaConfig(
            **common,
            type_vocab_size=1,
            layer_norm_eps=1e-5,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        return RobertaForMaskedLM(cfg)
    return BertForMaskedLM(BertConfig(**common, type_vocab_size=2, pad_token_id=tok.pad_token_id))


def _commit(name: str) -> str:
    return hashlib.sha1(f"prompt-learning-rehearsal:{FORMAT}:{name}".encode()).hexdigest()


def _write_repo(hub: Path, name: str) -> None:
    """``hub/models--org--name``: ``refs/main`` and one snapshot with weights, config and tokenizer."""
    if name not in HUB_STANDINS:
        raise RehearsalError(
            f"no stand-in for hub id {name!r}; add one to HUB_STANDINS (known: {list(HUB_STANDINS)})"
        )
    spec, commit = HUB_STANDINS[name], _commit(name)
    repo = hub / ("models--" + name.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    tok = _tokenizer(spec.family)
    seed = int(commit[:8], 16)
    model = _model(spec, tok, seed).eval()
    model.config.name_or_path = name
    model.save_pretrained(snapshot)
    tok.save_pretrained(snapshot)
    (snapshot / "README.md").write_text(
        f"# Stand-in for {name}\n\nA tiny RANDOM {type(model).__name__} "
        f"({model.num_parameters():,} parameters) "
        "with a tokenizer of the same family, written by `prompt_learning.rehearsal` so that the book's hub "
        "code paths run offline. It is not the real model: its outputs mean nothing.\n"
    )
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def build_hub_cache(hf_home: str | Path, names: list[str] | tuple[str, ...] | None = None) -> Path:
    """Write the stand-ins for ``names`` (default: every one in ``HUB_STANDINS``) as ``hf_home/hub``.

    The cache is built in a temporary folder next to ``hf_home`` and renamed into place when
    complete. An existing ``hf_home`` built by this function with every name is kept as it is; one
    that this function did not build is never touched.
    """
    hf_home = Path(hf_home).absolute()
    names = sorted(names or HUB_STANDINS)
    marker = hf_home / MARKER
    if hf_home.exists():
        if not marker.exists():
            raise RehearsalError(
                f"{hf_home} exists and is not a rehearsal cache; refusing to replace it. "
                "Give a new or empty folder (e.g. _build/rehearsal-hub)"
            )
        built = json.loads(marker.read_text())
        if built.get("format") == FORMAT and set(names) <= set(built.get("names", ())):
            return hf_home

    def fill(tmp: Path) -> None:
        for name in names:
            _write_repo(tmp / "hub", name)
        (tmp / MARKER).write_text(json.dumps({"format": FORMAT, "names": names}, indent=1))

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one "Writing model shards" bar per repository otherwise
    try:
        return write_folder(hf_home, fill)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def environment(hf_home: str | Path) -> dict[str, str]:
    """The variables that point the hub libraries (read at import) at the cache, offline."""
    return {
        "HF_HOME": str(Path(hf_home).absolute()),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PROMPT_LEARNING_PROFILE": "rehearsal",
    }


_CHECK = r"""
import json, sys
import torch
from transformers import AutoTokenizer
from prompt_learning.backbones import load_backbone
report = {}
for name in json.loads(sys.argv[1]):
    b = load_backbone(name)
    tok = AutoTokenizer.from_pretrained(name)
    text = "I like the film very much. It was"
    if b.kind == "masked-lm":
        zh = "chinese" in name
        text = f"我很喜欢迪士尼电影。这部电影很{tok.mask_token}。" if zh else f"{text} {tok.mask_token}."
    ids = b.tokenizer([text], return_tensors="pt").to(b.model.device)
    with torch.no_grad():
        logits = b.model(**ids).logits
    chat = None
    if tok.chat_template:
        chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    row = ids["input_ids"][0].tolist()
    report[name] = {"class": type(b.model).__name__, "kind": b.kind, "vocab": len(tok),
                    "mask_token": tok.mask_token, "mask_in_text": tok.mask_token is not None
                    and tok.mask_token_id in row, "logits": list(logits.shape),
                    "finite": bool(torch.isfinite(logits).all()), "chat": chat,
                    "heads": b.config.num_attention_heads,
                    "kv_heads": getattr(b.config, "num_key_value_heads", b.config.num_attention_heads),
                    "tokens": tok.convert_ids_to_tokens(row)}
print(json.dumps(report))
"""


def check_hub_cache(
    hf_home: str | Path, names: list[str] | None = None, timeout: float = 600
) -> dict[str, dict]:
    """Load every name from ``hf_home`` in a fresh process with the hub offline; what each loaded as.

    A fresh process because ``huggingface_hub`` reads ``HF_HOME`` when it is imported.
    """
    names = names or json.loads((Path(hf_home) / MARKER).read_text())["names"]
    shadows = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE")  # would win over HF_HOME
    env = {k: v for k, v in os.environ.items() if k not in shadows}
    env |= environment(hf_home)
    run = subprocess.run(
        [sys.executable, "-c", _CHECK, json.dumps(names)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if run.returncode != 0:
        raise RehearsalError(f"loading from {hf_home} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m prompt_learning.rehearsal", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write the stand-in hub cache into DIR and print what to export")
    build.add_argument("dir", type=Path)
    build.add_argument(
        "--names", nargs="*", default=None, help=f"hub ids (default: all of {list(HUB_STANDINS)})"
    )
    check = sub.add_parser("check", help="load every stand-in from DIR offline, in a fresh process")
    check.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        path = build_hub_cache(args.dir, args.names)
        for key, value in environment(path).items():
            print(f"export {key}={value}")
    else:
        for name, r in check_hub_cache(args.dir).items():
            print(
                f"{name}: {r['class']} ({r['kind']}), vocab {r['vocab']}, logits {r['logits']}, "
                f"mask {r['mask_token']}"
            )


if __name__ == "__main__":
    main()
