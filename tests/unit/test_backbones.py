"""load_backbone: tiny test models, placement on one device, clear errors for names it cannot serve."""

from unittest import mock

import pytest
import torch
import transformers.utils.hub
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
from huggingface_hub.utils import hf_raise_for_status, httpx
from transformers import AutoConfig

from prompt_learning import backbones
from prompt_learning.backbones import HUB_KNOWN, BackboneError, load_backbone
from prompt_learning.precision import PrecisionError
from prompt_learning.tiny import TINY


@pytest.mark.parametrize("name", TINY)
def test_tiny_backbones_build_and_run(name):
    b = load_backbone(name)
    batch = b.tokenizer(["the film was great", "bad"], return_tensors="pt", padding=True)
    with torch.no_grad():
        if b.kind == "seq2seq":
            out = b.model(**batch, decoder_input_ids=batch["input_ids"][:, :2])
        else:
            out = b.model(**batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape[:2] or b.kind == "seq2seq"
    assert (
        b.kind
        == {
            "tiny-bert": "masked-lm",
            "tiny-roberta": "masked-lm",
            "tiny-gpt2": "causal-lm",
            "tiny-llama": "causal-lm",
            "tiny-bart": "seq2seq",
        }[name]
    )


def test_tiny_is_deterministic():
    a, b = load_backbone("tiny-llama").model, load_backbone("tiny-llama").model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_tiny_llama_uses_grouped_query_attention():
    cfg = load_backbone("tiny-llama").config
    assert cfg.num_key_value_heads < cfg.num_attention_heads


def test_causal_tokenizers_pad_left():
    # the next-token logits of a batch are read at the last position: padding must be on the left
    assert load_backbone("tiny-llama").tokenizer.padding_side == "left"
    assert load_backbone("tiny-bert").tokenizer.padding_side == "right"


def test_unknown_name_lists_the_choices():
    with pytest.raises(BackboneError, match="smollm2-135m.*tiny-bert"):
        load_backbone("no-such-model")


def test_hub_name_offline_names_the_embedded_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="smollm2-135m"):
        load_backbone("gpt2-medium")
    with pytest.raises(BackboneError, match="minilm-l6"):
        load_backbone("roberta-large")


def test_backbone_is_placed_on_the_device_asked_for():
    b = load_backbone("tiny-llama", device="cpu")
    assert b.device == torch.device("cpu") and b.dtype == torch.float32
    assert {p.device.type for p in b.model.parameters()} == {"cpu"}
    assert not b.model.training


def test_auto_device_is_the_cpu_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: 'auto' means cuda here (tests/gpu checks that)")
    assert load_backbone("tiny-bert", device="auto").device == torch.device("cpu")


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(PrecisionError, match="no CUDA GPU is visible.*'auto' or 'cpu'"):
        load_backbone("tiny-bert", device="cuda")


def test_dtype_is_the_dtype_of_the_input_embeddings():
    assert load_backbone("tiny-gpt2", dtype=torch.bfloat16).dtype == torch.bfloat16


# --- hub failures: each says what happened and names its own fix -----------------------------------
# The hub's exceptions are built as huggingface_hub raises them (hf_raise_for_status on a response
# with the hub's X-Error-Code) and wrapped by transformers' own code, which raises an OSError whose
# __cause__ is the original. No request leaves the machine: the download function is replaced.


def _hub_error(status: int, code: str, repo: str) -> Exception:
    req = httpx.Request("GET", f"https://huggingface.co/{repo}/resolve/main/config.json")
    try:
        hf_raise_for_status(httpx.Response(status, headers={"X-Error-Code": code}, request=req))
    except Exception as e:
        return e
    raise AssertionError("hf_raise_for_status raised nothing")


def _connection_error() -> Exception:
    try:
        try:
            raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")
        except httpx.ConnectError as cause:
            raise LocalEntryNotFoundError("cannot find the requested files in the local cache") from cause
    except LocalEntryNotFoundError as e:
        return e


def _as_transformers_raises(hub_error: Exception, repo: str) -> OSError:
    """The OSError ``AutoConfig.from_pretrained`` raises when the hub download raises ``hub_error``."""
    with mock.patch.object(transformers.utils.hub, "hf_hub_download", side_effect=hub_error):
        try:
            AutoConfig.from_pretrained(repo)
        except OSError as e:
            return e
    raise AssertionError("AutoConfig.from_pretrained raised no OSError")


def _hub_message(monkeypatch, wrapped: OSError, repo: str) -> str:
    monkeypatch.setattr(backbones.AutoConfig, "from_pretrained", mock.Mock(side_effect=wrapped))
    with pytest.raises(BackboneError) as info:
        load_backbone(repo)
    assert info.value.__cause__ is wrapped
    return str(info.value)


@pytest.fixture
def three_hub_messages(monkeypatch):
    repos = {
        "gated": "meta-llama/Llama-3.2-1B",
        "missing": "FacebookAI/roberta-lage",
        "unreachable": "openai-community/gpt2-medium",
    }
    raised = {
        "gated": _hub_error(403, "GatedRepo", repos["gated"]),
        "missing": _hub_error(401, "RepoNotFound", repos["missing"]),
        "unreachable": _connection_error(),
    }
    wrapped = {k: _as_transformers_raises(raised[k], repos[k]) for k in repos}  # before any patching
    for k in repos:
        assert wrapped[k].__cause__ is raised[k]  # the chain the library reads
    assert isinstance(raised["gated"], RepositoryNotFoundError)  # why gated is tested first
    gated = _hub_message(monkeypatch, wrapped["gated"], repos["gated"])
    missing = _hub_message(monkeypatch, wrapped["missing"], repos["missing"])
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # a network failure, not offline mode
    unreachable = _hub_message(monkeypatch, wrapped["unreachable"], repos["unreachable"])
    return gated, missing, unreachable


def test_the_three_hub_failures_say_different_things(three_hub_messages):
    gated, missing, unreachable = three_hub_messages
    assert len({gated, missing, unreachable}) == 3
    assert "gated" in gated and "gated" not in missing and "gated" not in unreachable


def test_gated_model_says_how_to_get_access(three_hub_messages):
    gated, _, _ = three_hub_messages
    assert "licence" in gated and "huggingface.co/meta-llama/Llama-3.2-1B" in gated
    assert "huggingface-cli login" in gated and "HF_TOKEN" in gated


def test_misspelt_id_says_not_found_and_lists_known_ids(three_hub_messages):
    _, missing, _ = three_hub_messages
    assert "was not found on the Hugging Face hub" in missing and "spelling" in missing
    assert all(known in missing for known in HUB_KNOWN[:3]) and "Did you mean 'roberta-large'" in missing
    assert "cannot be reached" not in missing


def test_unreachable_hub_names_the_embedded_alternative(three_hub_messages):
    _, _, unreachable = three_hub_messages
    assert "cannot be reached" in unreachable and "not in the local cache" in unreachable
    assert "'smollm2-135m'" in unreachable and "'cpu' profile" in unreachable


def test_offline_mode_is_named_as_the_reason(monkeypatch):
    # the real chain, no mock: HF_HUB_OFFLINE=1 (tests/conftest.py) and nothing cached
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="HF_HUB_OFFLINE=1.*not in the local cache.*'minilm-l6'") as info:
        load_backbone("roberta-large")
    assert isinstance(info.value.__cause__.__cause__, LocalEntryNotFoundError)


def test_any_other_hub_failure_keeps_its_own_message(monkeypatch):
    monkeypatch.setattr(
        backbones.AutoConfig,
        "from_pretrained",
        mock.Mock(side_effect=PermissionError("[Errno 13] cache folder is read-only")),
    )
    with pytest.raises(BackboneError, match="cache folder is read-only") as info:
        load_backbone("org/model")
    assert not any(s in str(info.value) for s in ("gated", "not found", "cannot be reached"))
