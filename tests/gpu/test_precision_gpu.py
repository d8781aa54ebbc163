"""The precision rule on a real CUDA GPU: placement, "auto", two autocast precisions, loss scaling.

No prompt method is built here: only prompt_learning.precision and load_backbone. Skipped
without a GPU; ``make gpu-check`` runs it.
"""

import pytest
import torch
from torch import nn

from prompt_learning import load_backbone
from prompt_learning.precision import (
    PrecisionError,
    auto_precision,
    autocast,
    grad_scaler,
    no_autocast,
    resolve_device,
    resolve_precision,
)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}


def native_bf16() -> bool:
    return torch.cuda.get_device_capability(0)[0] >= 8


def precisions() -> list[str]:
    """The low precisions this GPU runs: fp16 everywhere, bf16 from compute capability 8 on."""
    return ["bf16", "fp16"] if native_bf16() else ["fp16"]


def test_auto_precision_follows_the_real_device():
    want = "bf16" if native_bf16() else "fp16"
    assert auto_precision("cuda") == want == resolve_precision("auto", "cuda")
    assert resolve_precision("auto", "cpu") == "no"
    assert resolve_device("auto") == torch.device("cuda")


def test_two_autocast_precisions_in_one_process():
    torch.manual_seed(0)
    layer = nn.Linear(64, 8).cuda()
    x = torch.randn(4, 64, device="cuda")
    reference = layer(x)
    for precision in [*precisions(), "no", *reversed(precisions())]:  # back and forth, one process
        layer.zero_grad()
        with autocast("cuda", precision):
            y = layer(x)
        assert y.dtype == DTYPES[precision], precision
        y.float().sum().backward()
        assert layer.weight.dtype == layer.weight.grad.dtype == torch.float32  # weights stay fp32
        torch.testing.assert_close(y.float(), reference, atol=5e-2, rtol=5e-2)


def test_no_autocast_restores_full_precision_inside_autocast():
    a = torch.randn(8, 8, device="cuda")
    with autocast("cuda", precisions()[0]):
        assert (a @ a).dtype == DTYPES[precisions()[0]]
        with no_autocast():
            assert (a @ a).dtype == torch.float32


def test_grad_scaler_is_enabled_for_fp16_only():
    assert grad_scaler("cuda", "fp16").is_enabled()
    assert not grad_scaler("cuda", "no").is_enabled()
    if native_bf16():
        assert not grad_scaler("cuda", "bf16").is_enabled()


def test_a_scaled_fp16_step_updates_the_weights():
    torch.manual_seed(0)
    layer = nn.Linear(16, 2).cuda()
    before = layer.weight.detach().clone()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    scaler = grad_scaler("cuda", "fp16")
    for _ in range(8):  # a step whose scaled gradients overflow is skipped and the scale halved
        opt.zero_grad()
        with autocast("cuda", "fp16"):
            loss = nn.functional.cross_entropy(
                layer(torch.randn(8, 16, device="cuda")), torch.randint(0, 2, (8,), device="cuda")
            )
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if not torch.equal(before, layer.weight.detach()):
            break
    assert not torch.equal(before, layer.weight.detach()) and torch.isfinite(layer.weight).all()
    assert layer.weight.dtype == torch.float32


def test_bf16_on_a_gpu_without_it_is_a_clear_error():
    if native_bf16():
        assert resolve_precision("bf16", "cuda") == "bf16"
    else:
        with pytest.raises(PrecisionError, match="no native bf16.*'fp16'"):
            resolve_precision("bf16", "cuda")


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-bert"])
def test_load_backbone_auto_lands_on_the_gpu(name):
    b = load_backbone(name, device="auto")
    assert b.device.type == "cuda" and b.dtype == torch.float32
    assert {p.device.type for p in b.model.parameters()} == {"cuda"}
    batch = b.tokenizer(["the film was great", "bad"], return_tensors="pt", padding=True).to(b.device)
    with torch.no_grad(), autocast(b.device, "auto"):
        logits = b.model(**batch).logits
    assert logits.device.type == "cuda" and torch.isfinite(logits.float()).all()


def test_load_backbone_cpu_stays_on_the_cpu_beside_a_gpu():
    assert load_backbone("tiny-gpt2", device="cpu").device == torch.device("cpu")
    assert load_backbone("tiny-gpt2", device="cuda:0").device == torch.device("cuda", 0)
