"""bf16 autocast against fp32 on this machine: forward speed, evaluation throughput, and accuracy.

Run:  python benchmarks/precision_cpu.py [--n 1000] [--repeats 5] [--json out.json]

The library's ``"auto"`` precision is bf16 autocast on a CPU with AMX-BF16 / AVX512-BF16 (weights and
trainable tensors stay fp32). This measures, in one run, what that buys and what it costs:

* the no-grad forward of SmolLM2 on a batch of 8 × 64 tokens, fp32 against bf16 (alternating repeats,
  medians; the ratio is the claim, not the seconds);
* evaluation throughput (sentences per second) of the zero-shot classifier on ``--n`` movie-review test
  sentences against the forward-only floor (the same batches already tokenised, the model alone);
* accuracy in the two precisions on the same sentences — zero-shot, and a prompt trained in each
  precision from the same seed — as paired verdicts (exact McNemar, paired bootstrap);
* that a bf16 training run is a function of its seed: two runs give the same losses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from prompt_learning import (
    ClozeClassifier,
    PromptLearningConfig,
    PromptTuning,
    PromptTuningConfig,
    Verbalizer,
    evaluate,
    few_shot,
    fit,
    load_backbone,
    movie_reviews,
    stratified_head,
)
from prompt_learning.benchmark import batch_texts, forward_fn
from prompt_learning.notebook import quiet
from prompt_learning.positions import position_ids
from prompt_learning.precision import autocast, cpu_has_fast_bf16, frozen_weights_cast
from prompt_learning.stats import accuracy_ci, paired, verdict
from prompt_learning.allocator import keep_freed_memory
from prompt_learning.precision import cpu_description

TEMPLATE = "Review: {text}\nSentiment: {mask}"
WORDS = Verbalizer({"negative": "negative", "positive": "positive"})


def median_time(fn, repeats: int) -> float:
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return statistics.median(out)


def forward_floor(clf: ClozeClassifier, texts: list[str], batch: int, precision: str) -> float:
    """Seconds for the model alone on pre-tokenised batches (what evaluation cannot go below), under
    evaluate's own rules: frozen weights cast once per call, then autocast."""
    batches = [clf.encode({"text": texts[i : i + batch]}) for i in range(0, len(texts), batch)]
    start = time.perf_counter()
    with torch.no_grad(), frozen_weights_cast(clf, "cpu", precision), autocast("cpu", precision):
        for b in batches:
            clf.model(
                input_ids=b["input_ids"],
                attention_mask=b["attention_mask"],
                position_ids=position_ids(b["attention_mask"]),
                logits_to_keep=1,
                use_cache=False,
            )
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="movie-review test sentences")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30, help="prompt-tuning steps per precision")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    quiet()
    keep_freed_memory()  # the process-wide CPU rule, as every chapter's start() applies it
    out: dict = {
        "machine": cpu_description(),
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "threads": torch.get_num_threads(),
    }
    backbone = load_backbone("smollm2-135m", device="cpu")
    clf = ClozeClassifier(backbone, TEMPLATE, WORDS, PromptLearningConfig(max_length=64))

    texts = batch_texts(backbone.tokenizer, batch=8, tokens=64)
    fwd = {p: [] for p in ("no", "bf16")}
    fns = {p: forward_fn(clf, texts, p) for p in fwd}
    for fn in fns.values():
        fn()
    for _ in range(args.repeats):  # alternate: drifts in machine load hit both alike
        for p, fn in fns.items():
            start = time.perf_counter()
            fn()
            fwd[p].append(time.perf_counter() - start)
    out["forward_s"] = {p: statistics.median(t) for p, t in fwd.items()}
    out["forward_speedup"] = out["forward_s"]["no"] / out["forward_s"]["bf16"]

    reviews = movie_reviews()
    test = stratified_head(reviews["test"], args.n)
    test = test.select(np.argsort([len(t) for t in test["text"]]).tolist())  # sorted: batches pad less
    results, out["eval"] = {}, {}
    for p in ("no", "bf16"):
        start = time.perf_counter()
        results[p] = evaluate(clf, test, batch_size=32, mixed_precision=p)
        seconds = time.perf_counter() - start
        floor = forward_floor(clf, test["text"], 32, p)
        out["eval"][p] = {
            "sentences_per_s": len(test) / seconds,
            "floor_sentences_per_s": len(test) / floor,
            "over_floor": seconds / floor,
            "accuracy": str(accuracy_ci(results[p]["correct"])),
        }
    zero = paired(results["bf16"]["correct"], results["no"]["correct"])
    out["zero_shot_verdict"] = verdict(zero, "bf16", "fp32")

    train = few_shot(reviews["pool"], 16, seed=0)
    trained, losses = {}, {}
    for p in ("no", "bf16", "bf16"):
        m = PromptTuning(
            backbone,
            TEMPLATE,
            WORDS,
            PromptTuningConfig(16, init_text="Is this review positive?", max_length=64),
        )
        h = fit(m, train, steps=args.steps, lr=1e-2, batch_size=8, seed=0, mixed_precision=p, progress=False)
        losses.setdefault(p, []).append(h.loss)
        trained[p] = evaluate(m, test, batch_size=32, mixed_precision=p)["correct"]
    out["prompt_tuning_verdict"] = verdict(paired(trained["bf16"], trained["no"]), "bf16", "fp32")
    out["prompt_tuning_accuracy"] = {p: str(accuracy_ci(c)) for p, c in trained.items()}
    out["bf16_reruns_identical"] = losses["bf16"][0] == losses["bf16"][1]

    print(f"CPU bf16 (AMX/AVX512-BF16): {out['cpu_has_fast_bf16']}; {out['threads']} threads")
    print(
        f"forward 8 × 64: fp32 {out['forward_s']['no']:.3f} s, bf16 {out['forward_s']['bf16']:.3f} s "
        f"→ bf16 is {out['forward_speedup']:.2f}× faster"
    )
    for p, e in out["eval"].items():
        print(
            f"evaluation {p:>4}: {e['sentences_per_s']:.1f} sentences/s, forward-only floor "
            f"{e['floor_sentences_per_s']:.1f}/s (time over floor {e['over_floor']:.2f}×); accuracy {e['accuracy']}"
        )
    print("zero-shot:", out["zero_shot_verdict"])
    print("prompt tuning:", out["prompt_tuning_verdict"], out["prompt_tuning_accuracy"])
    print("two bf16 training runs from one seed give identical losses:", out["bf16_reruns_identical"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
