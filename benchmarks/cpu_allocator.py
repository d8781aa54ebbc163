"""What keeping freed memory (``prompt_learning.allocator``) buys on this CPU, in one run.

The rule is process-wide, so each set-up runs in a process of its own: ``glibc`` (malloc as the
process found it, ``PROMPT_LEARNING_CPU_MALLOC=0``) and ``kept`` (the library's default), started
alternately ``--repeats`` times so drifts in machine load hit both alike. Each process loads
SmolLM2-135M and measures, at the book's precision:

* evaluation: zero-shot cloze accuracy on ``--n`` movie-review test sentences (length-sorted,
  batch 32), as sentences per second;
* a prompt-tuning step (16 virtual tokens, frozen backbone, batch 8) and a PET step (every weight
  trains, batch 8), as seconds per step over ``fit``'s steps;
* its peak resident memory.

Checks in the same run: both set-ups give the same predictions (the allocator moves no number).
Writes ``benchmarks/results/cpu_allocator.json``.

    .venv/bin/python benchmarks/cpu_allocator.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from prompt_learning.precision import cpu_description

SETUPS = {"glibc": "0", "kept": "1"}


def measure(n: int) -> dict:
    """One process's numbers (run with the set-up's environment)."""
    import numpy as np
    import torch

    from prompt_learning import (
        PET,
        ClozeClassifier,
        PETConfig,
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
    from prompt_learning.allocator import keep_freed_memory
    from prompt_learning.method import PromptLearningConfig

    kept = keep_freed_memory()  # the rule under test; PROMPT_LEARNING_CPU_MALLOC=0 in the glibc set-up
    lm = load_backbone("smollm2-135m", device="cpu")
    data = movie_reviews()
    test = stratified_head(data["test"], n)
    test = test.select(np.argsort([len(t) for t in test["text"]], kind="stable"))
    train = few_shot(data["pool"], 16, seed=0)
    template, words = (
        "Review: {text}\nSentiment: {mask}",
        Verbalizer({"negative": "negative", "positive": "positive"}),
    )
    zero = ClozeClassifier(lm, template, words, PromptLearningConfig(max_length=48))
    evaluate(zero, test.select(range(32)), batch_size=32)  # warm-up
    start = time.perf_counter()
    result = evaluate(zero, test, batch_size=32)
    eval_s = time.perf_counter() - start
    steps = {}
    for name, method, count, lr in (
        ("prompt tuning", PromptTuning(lm, template, words, PromptTuningConfig(16, max_length=48)), 8, 1e-2),
        (
            "PET",
            PET(load_backbone("smollm2-135m", device="cpu"), template, words, PETConfig(max_length=48)),
            4,
            2e-5,
        ),
    ):
        fit(method, train, steps=1, lr=lr, batch_size=8, progress=False)  # warm-up
        steps[name] = fit(method, train, steps=count, lr=lr, batch_size=8, progress=False).seconds / count
        del method
    return {
        "kept": kept,
        "sentences_per_s": n / eval_s,
        "step_s": steps,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "predictions": result["predictions"].tolist(),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=500, help="test sentences per evaluation")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu_allocator.json")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.n)))
        return
    runs = {name: [] for name in SETUPS}
    for _ in range(args.repeats):
        for name, flag in SETUPS.items():
            env = dict(os.environ, PROMPT_LEARNING_CPU_MALLOC=flag)
            out = subprocess.run(
                [sys.executable, __file__, "--worker", "--n", str(args.n)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
            print(name, {k: v for k, v in runs[name][-1].items() if k != "predictions"}, flush=True)
    med = {
        name: {
            "sentences_per_s": statistics.median(r["sentences_per_s"] for r in rs),
            **{f"{m} step_s": statistics.median(r["step_s"][m] for r in rs) for m in rs[0]["step_s"]},
            "peak_rss_gib": statistics.median(r["peak_rss_gib"] for r in rs),
        }
        for name, rs in runs.items()
    }
    g, k = med["glibc"], med["kept"]
    result = {
        "device": f"cpu ({runs['kept'][0]['threads']} threads)",
        "machine": cpu_description(),
        "repeats": args.repeats,
        "n": args.n,
        "rule_took": all(r["kept"] for r in runs["kept"]),
        "medians": med,
        "eval_throughput_kept_over_glibc": k["sentences_per_s"] / g["sentences_per_s"],
        "prompt_tuning_step_kept_over_glibc": k["prompt tuning step_s"] / g["prompt tuning step_s"],
        "pet_step_kept_over_glibc": k["PET step_s"] / g["PET step_s"],
        "peak_rss_kept_over_glibc": k["peak_rss_gib"] / g["peak_rss_gib"],
        "same_predictions": all(
            r["predictions"] == runs["glibc"][0]["predictions"] for rs in runs.values() for r in rs
        ),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
