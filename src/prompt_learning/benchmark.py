"""Our prompt methods against 🤗 PEFT's on SmolLM2: one training step's time and peak memory.

Same backbone, same batch (8 sentences × 64 tokens), same number of virtual tokens, same loss
(cross-entropy over two label words at the last position; PEFT is given ``logits_to_keep=1`` too).
Runs alternate between ours and PEFT's, several repeats; medians are reported as ratios ours/PEFT.
Our frozen-backbone step is also compared with a no-grad forward of the same method on the same
batch: what training costs over inference.

The command line is ``python benchmarks/prompt_methods.py``; chapter 9 calls :func:`compare`.
Peak memory: CUDA's max_memory_allocated on a GPU; on a CPU each method runs in a fresh process
and the peak growth of resident memory during three steps (sampled every 2 ms) is taken.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from .backbones import load_backbone
from .cloze import ClozeClassifier
from .precision import autocast, cpu_description, frozen_weights_cast, resolve_device, resolve_precision
from .verbalizers import Verbalizer

TEMPLATE = "Review: {text}\nSentiment: {mask}"
WORDS = Verbalizer({"negative": "negative", "positive": "positive"})
METHODS = ("prompt_tuning", "p_tuning", "prefix_tuning")


def batch_texts(tokenizer, batch: int = 8, tokens: int = 64) -> list[str]:
    """``batch`` review-like texts of about ``tokens`` tokens each once templated."""
    base = (
        "the film is a wonderful and moving story with great actors, though the plot drags a little "
        "in the middle and the music is too loud; still, i would watch it again with friends. "
    ) * 4
    ids = tokenizer(base, add_special_tokens=False)["input_ids"][: tokens - 8]
    text = tokenizer.decode(ids)
    return [text] * batch


def ours(name: str, backbone, n: int, max_length: int = 96):
    """Our implementation of ``name`` with ``n`` virtual tokens (texts cut at ``max_length`` tokens)."""
    if name == "prompt_tuning":
        from .soft_prompts import PromptTuning, PromptTuningConfig

        return PromptTuning(
            backbone,
            TEMPLATE,
            WORDS,
            PromptTuningConfig(num_virtual_tokens=n, init="RANDOM", max_length=max_length),
        )
    if name == "p_tuning":
        from .p_tuning import PTuning, PTuningConfig, virtual_tokens

        return PTuning(
            backbone,
            virtual_tokens(n) + TEMPLATE,
            WORDS,
            PTuningConfig(
                encoder="MLP", encoder_hidden_size=backbone.config.hidden_size, max_length=max_length
            ),
        )
    from .prefix_tuning import PrefixTuning, PrefixTuningConfig

    config = PrefixTuningConfig(
        num_virtual_tokens=n, reparameterize=False, init="random", max_length=max_length
    )
    return PrefixTuning(backbone, TEMPLATE, WORDS, config)


def peft(name: str, backbone, n: int):
    """PEFT's ``name`` on ``backbone`` as PEFT comes: on transformers' own ``sdpa`` attention."""
    backbone.model.set_attn_implementation("sdpa")
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, TaskType, get_peft_model

    cfg = {
        "prompt_tuning": lambda: PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n),
        "p_tuning": lambda: PromptEncoderConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=n,
            encoder_reparameterization_type="MLP",
            encoder_hidden_size=backbone.config.hidden_size,
        ),
        "prefix_tuning": lambda: PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n),
    }[name]()
    return get_peft_model(backbone.model, cfg)


def build(impl: str, name: str, backbone, n: int, tokens: int):
    """``impl`` ("ours" or "peft") of method ``name`` with ``n`` virtual tokens."""
    return ours(name, backbone, n, tokens + 32) if impl == "ours" else peft(name, backbone, n)


def step_fn(impl: str, method, backbone, texts: list[str], precision: str = "no"):
    """One closure = one training step (forward, backward, optimiser step) under ``precision`` autocast.

    The labels live on the backbone's device, where the logits are computed.
    """
    device = backbone.model.get_input_embeddings().weight.device
    labels = torch.tensor([0, 1] * (len(texts) // 2), device=device)
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    if impl == "ours":

        def loss():
            return F.cross_entropy(method(texts).float(), labels)
    else:
        cloze = ClozeClassifier(backbone, TEMPLATE, WORDS)
        enc = cloze.encode({"text": texts})
        ids = [i for group in cloze.label_ids for i in group]

        def loss():
            logits = method(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], logits_to_keep=1
            ).logits[:, -1, ids]  # (B, C)
            return F.cross_entropy(logits.float(), labels)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            value = loss()
        value.backward()
        opt.step()
        return value.item()

    return step


def forward_fn(method, texts, precision: str = "no"):
    """One closure = one no-grad forward of ``method`` (texts → class logits) under ``precision``."""
    device = next(method.parameters()).device

    def forward():
        with torch.no_grad(), autocast(device, precision):
            method(texts)

    return forward


def timed(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def time_all(n: int, repeats: int, tokens: int, model: str = "smollm2-135m", precision: str = "auto") -> dict:
    """Median seconds of a training step and a no-grad forward, ours and PEFT's, in two precisions.

    ``ours`` runs as ``fit`` does, at the book's default ``precision`` (``"auto"``: bf16 autocast on a
    CPU with AMX or a recent GPU; frozen weights cast once; the library's attention), ``ours_fp32`` in
    fp32; ``peft`` as PEFT comes (fp32, transformers' ``sdpa``), ``peft_same`` at our precision.
    Each runs on a backbone of its own.
    """
    device = resolve_device("auto")
    ours_precision = resolve_precision(precision, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # each precision is timed once: where the default is fp32, the fp32 columns are the default's
    precisions = list(dict.fromkeys((ours_precision, "no")))
    results = {}
    for name in METHODS:
        fns = {}
        with contextlib.ExitStack() as held:
            for impl, precision in [("ours", p) for p in precisions] + [("peft", "no")]:
                backbone = load_backbone(model, device=device)
                method = build(impl, name, backbone, n, tokens).to(device)
                texts = batch_texts(backbone.tokenizer, tokens=tokens)
                if impl == "peft":
                    fns["peft"] = step_fn(impl, method, backbone, texts, "no")
                    fns["peft_same"] = step_fn(impl, method, backbone, texts, ours_precision)
                    continue
                # as fit and evaluate run it: frozen weights cast once, not at every matmul
                held.enter_context(frozen_weights_cast(method, device, precision))
                suffix = "" if precision == ours_precision else "_fp32"
                fns["ours" + suffix] = step_fn(impl, method, backbone, texts, precision)
                fns["forward" + suffix] = forward_fn(method, texts, precision)  # no gradients
            for fn in fns.values():
                fn()  # warm-up
            times = {impl: [] for impl in fns}
            for _ in range(repeats):  # alternate, so drifts in machine load hit all alike
                for impl, fn in fns.items():
                    times[impl].append(timed(fn, sync))
        results[name] = {impl: statistics.median(t) for impl, t in times.items()}
        results[name].setdefault("ours_fp32", results[name]["ours"])
        results[name].setdefault("forward_fp32", results[name]["forward"])
        # ours over PEFT's default within each repeat (the two ran back to back): the spread
        results[name]["ratios"] = [o / p for o, p in zip(times["ours"], times["peft"])]
    for p in precisions:
        key = "forward_no_grad" + ("" if p == ours_precision else "_fp32")
        backbone = load_backbone(model, device=device)
        plain = ClozeClassifier(backbone, TEMPLATE, WORDS)
        fn = forward_fn(plain, batch_texts(backbone.tokenizer, tokens=tokens), p)
        with frozen_weights_cast(plain, device, p):
            fn()
            results[key] = statistics.median(timed(fn, sync) for _ in range(repeats))
    results.setdefault("forward_no_grad_fp32", results["forward_no_grad"])
    results["precision"] = ours_precision
    return results


def peak_memory(name: str, impl: str, n: int, tokens: int, model: str = "smollm2-135m") -> float:
    """Extra peak memory (MiB) of three training steps over the loaded model."""
    if torch.cuda.is_available():
        backbone = load_backbone(model)
        backbone.model.to("cuda")
        method = build(impl, name, backbone, n, tokens).to("cuda")
        step = step_fn(impl, method, backbone, batch_texts(backbone.tokenizer, tokens=tokens))
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(3):
            step()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    code = (
        f"import prompt_learning.benchmark as b; from prompt_learning import load_backbone;"
        f"bb = load_backbone({model!r}); m = b.build({impl!r}, {name!r}, bb, {n}, {tokens});"
        f"s = b.step_fn('{impl}', m, bb, b.batch_texts(bb.tokenizer, tokens={tokens}));"
        f"print(b.rss_growth(lambda: [s() for _ in range(3)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def rss_growth(fn, every: float = 0.002) -> float:
    """Peak resident memory (MiB) reached while ``fn`` runs, above the level before it."""
    import gc
    import threading

    import psutil

    gc.collect()
    proc = psutil.Process()
    base = peak = proc.memory_info().rss
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(every)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    fn()
    done.set()
    watcher.join()
    return (max(peak, proc.memory_info().rss) - base) / 2**20


def compare(
    repeats: int = 7, tokens: int = 64, virtual: int = 20, memory: bool = True, model: str = "smollm2-135m"
) -> dict:
    """Time (and, with ``memory``, peak memory) of every method, ours and PEFT's, as ratios.

    Returns ``{"device", "precision", "forward_no_grad_s", "rows": [...], ...}``; each row holds the
    medians ``ours_s`` (ours at the book's default precision) / ``peft_s`` (PEFT's default, fp32),
    ``time_ratio`` (ours/PEFT) with ``time_ratio_min``/``time_ratio_max`` (the lowest and highest
    ratio of one repeat's two back-to-back steps), ``time_ratio_same`` (ours/PEFT at the same precision), ``step_speedup``
    and ``forward_speedup`` (fp32 time over default-precision time, ours), ``ours_mib``/``peft_mib``,
    ``memory_ratio``, ``ours_forward_s`` and ``step_over_forward`` (our frozen-backbone step over a
    no-grad forward of the same method on the same batch); ``forward_no_grad_s`` is the plain model's
    forward, no prompt (``forward_no_grad_fp32_s`` in fp32).
    """
    torch.manual_seed(0)
    times = time_all(virtual, repeats, tokens, model)
    rows = []
    for name in METHODS:
        mem = {
            impl: peak_memory(name, impl, virtual, tokens, model) if memory else float("nan")
            for impl in ("ours", "peft")
        }
        t = times[name]
        rows.append(
            {
                "method": name,
                "ours_s": t["ours"],
                "peft_s": t["peft"],
                "time_ratio": t["ours"] / t["peft"],
                "time_ratio_min": min(t["ratios"]),
                "time_ratio_max": max(t["ratios"]),
                "peft_same_s": t["peft_same"],
                "time_ratio_same": t["ours"] / t["peft_same"],
                "ours_fp32_s": t["ours_fp32"],
                "step_speedup": t["ours_fp32"] / t["ours"],
                "forward_speedup": t["forward_fp32"] / t["forward"],
                "ours_mib": mem["ours"],
                "peft_mib": mem["peft"],
                "memory_ratio": mem["ours"] / mem["peft"] if mem["peft"] > 0 else float("nan"),
                "ours_forward_s": t["forward"],
                "step_over_forward": t["ours"] / t["forward"],
            }
        )
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    return {
        "model": model,
        "device": device,
        "machine": cpu_description(),
        "forward_no_grad_s": times["forward_no_grad"],
        "forward_no_grad_fp32_s": times["forward_no_grad_fp32"],
        "precision": times["precision"],
        "rows": rows,
        "batch": 8,
        "tokens": tokens,
        "virtual": virtual,
        "repeats": repeats,
    }
