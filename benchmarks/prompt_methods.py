"""Our prompt methods against 🤗 PEFT's on SmolLM2: one training step's time and peak memory.

Run:  python benchmarks/prompt_methods.py [--repeats 7] [--tokens 64] [--virtual 20] [--json out.json]

Prints medians over alternating repeats and the ratios ours/PEFT (time and peak memory): ours at the
book's default precision (bf16 autocast on a CPU with AMX) against PEFT at its default (fp32) and at
the same precision; the fp32/bf16 speed-ups of our step and forward; and our frozen-backbone step
over a no-grad forward of the same method. The measurement itself is
:mod:`prompt_learning.benchmark` (chapter 9 runs it too).
"""

from __future__ import annotations

import argparse
import json

from prompt_learning.benchmark import compare
from prompt_learning.notebook import quiet
from prompt_learning.allocator import keep_freed_memory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=64, help="tokens per sentence in the batch")
    ap.add_argument("--virtual", type=int, default=20, help="virtual tokens of every method")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if min(args.repeats, args.tokens, args.virtual) < 1:
        ap.error("--repeats, --tokens and --virtual must be positive")
    quiet()
    keep_freed_memory()  # the process-wide CPU rule, as every chapter's start() applies it
    result = compare(args.repeats, args.tokens, args.virtual)
    print(
        f"SmolLM2-135M, batch 8 × {args.tokens} tokens, {args.virtual} virtual tokens, "
        f"{args.repeats} alternating repeats, medians; device: {result['device']}; "
        f"our precision: {result['precision']}"
    )
    print(
        f"no-grad forward of the plain model on the batch: {result['forward_no_grad_s']:.3f} s "
        f"({result['forward_no_grad_fp32_s']:.3f} s in fp32)"
    )
    print(
        f"{'method':<15}{'ours s':>8}{'PEFT s':>8}{'ours/PEFT':>11}{'same prec.':>12}{'fp32/ours step':>16}"
        f"{'fp32/ours fwd':>15}{'ours MiB':>10}{'PEFT MiB':>10}{'mem ratio':>11}{'step/fwd':>10}"
    )
    for r in result["rows"]:
        print(
            f"{r['method']:<15}{r['ours_s']:>8.3f}{r['peft_s']:>8.3f}{r['time_ratio']:>11.2f}"
            f"{r['time_ratio_same']:>12.2f}{r['step_speedup']:>16.2f}{r['forward_speedup']:>15.2f}"
            f"{r['ours_mib']:>10.0f}{r['peft_mib']:>10.0f}{r['memory_ratio']:>11.2f}{r['step_over_forward']:>10.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
