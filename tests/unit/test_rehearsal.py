import json

import pytest
from transformers import AutoTokenizer

from prompt_learning import rehearsal
from prompt_learning.profiles import PROFILES
from prompt_learning.rehearsal import (
    CHAPTER_WORDS,
    MARKER,
    HUB_STANDINS,
    RehearsalError,
    build_hub_cache,
    check_hub_cache,
    hub_ids,
)

EXPECTED_CLASS = {
    "smollm2": "LlamaForCausalLM",
    "roberta": "RobertaForMaskedLM",
    "bert-chinese": "BertForMaskedLM",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build_hub_cache(tmp_path_factory.mktemp("rehearsal") / "hf-home")


@pytest.fixture(scope="module")
def loaded(cache):
    """Every stand-in loaded by id, offline, in one fresh process with HF_HOME set."""
    return check_hub_cache(cache)


def snapshot(cache, name):
    repo = cache / "hub" / ("models--" + name.replace("/", "--"))
    return repo / "snapshots" / (repo / "refs" / "main").read_text()


def test_every_hub_id_of_every_profile_has_a_stand_in():
    ids = hub_ids()
    assert set(ids) <= set(HUB_STANDINS)
    assert {
        "HuggingFaceTB/SmolLM2-1.7B-Instruct",
        "HuggingFaceTB/SmolLM2-360M-Instruct",
        "roberta-large",
        "bert-base-chinese",
    } <= set(ids)
    assert PROFILES["rehearsal"].causal_lm in ids


def test_hub_layout(cache):
    assert json.loads((cache / MARKER).read_text())["names"] == sorted(HUB_STANDINS)
    for name in HUB_STANDINS:
        snap = snapshot(cache, name)
        assert len(snap.name) == 40 and all(c in "0123456789abcdef" for c in snap.name)
        for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"):
            assert (snap / f).is_file(), (name, f)
        assert "RANDOM" in (snap / "README.md").read_text()
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("name", list(HUB_STANDINS))
def test_each_id_loads_offline_by_its_hub_id(loaded, name):
    r, family = loaded[name], HUB_STANDINS[name].family
    assert r["class"] == EXPECTED_CLASS[family]
    assert r["finite"] and r["logits"][-1] == r["vocab"]
    if family == "smollm2":
        assert r["kind"] == "causal-lm" and r["mask_token"] is None
        assert r["chat"].startswith("<|im_start|>system") and r["chat"].endswith("<|im_end|>\n")
        ratio = {"HuggingFaceTB/SmolLM2-1.7B-Instruct": 1}.get(name, 3)  # query per KV head, as the real
        assert r["heads"] // r["kv_heads"] == ratio
    else:
        assert r["kind"] == "masked-lm" and r["mask_token"] and r["mask_in_text"]
    if family == "bert-chinese":
        assert r["tokens"][1:6] == ["我", "很", "喜", "欢", "迪"]  # one token per character


def test_chapter_words_are_single_tokens(cache):
    for name in ("HuggingFaceTB/SmolLM2-1.7B-Instruct", "roberta-large"):
        tok = AutoTokenizer.from_pretrained(snapshot(cache, name))
        for word in CHAPTER_WORDS:
            for text in (" " + word, word):
                assert len(tok(text, add_special_tokens=False)["input_ids"]) == 1, (name, repr(text))
    zh = AutoTokenizer.from_pretrained(snapshot(cache, "bert-base-chinese"))
    for word in ("差", "好", "很", "。"):
        ids = zh(word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] != zh.unk_token_id
    assert (zh.pad_token_id, zh.unk_token_id, zh.cls_token_id, zh.mask_token_id) == (0, 100, 101, 103)


def test_a_complete_cache_is_kept(cache):
    before = (cache / MARKER).stat().st_mtime_ns
    assert build_hub_cache(cache, ["roberta-large"]) == cache
    assert (cache / MARKER).stat().st_mtime_ns == before


def test_a_folder_it_did_not_build_is_never_replaced(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(RehearsalError, match="not a rehearsal cache"):
        build_hub_cache(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep"


def test_unknown_ids_are_refused(tmp_path):
    with pytest.raises(RehearsalError, match="no stand-in"):
        build_hub_cache(tmp_path / "c", ["org/unknown-model"])
    assert not (tmp_path / "c").exists()


def test_command_line_prints_the_exports(cache, capsys):
    rehearsal.main(["build", str(cache)])
    lines = capsys.readouterr().out.splitlines()
    assert f"export HF_HOME={cache}" in lines and "export HF_HUB_OFFLINE=1" in lines
    assert "export PROMPT_LEARNING_PROFILE=rehearsal" in lines
