"""AdamW's update on this machine: PyTorch's default implementation against its fused kernel.

The parameters have SmolLM2-135M's shapes (embedding, attention and MLP matrices), the size PET
and full fine-tuning update every step. Prints the seconds per update and their ratio, checks that
both give the same parameters to float rounding, and writes ``benchmarks/results/optimizer_step.json``.

    .venv/bin/python benchmarks/optimizer_step.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from prompt_learning.precision import cpu_description

SHAPES = [(49152, 576)] + [(576, 576)] * 60 + [(192, 576)] * 60 + [(1536, 576)] * 90  # SmolLM2-135M


def seconds_per_step(params: list[torch.nn.Parameter], repeats: int, **kwargs) -> float:
    opt = torch.optim.AdamW(params, lr=1e-5, **kwargs)
    opt.step()  # the first step allocates the moments
    start = time.perf_counter()
    for _ in range(repeats):
        opt.step()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "optimizer_step.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    base = [torch.randn(s) for s in SHAPES]
    grads = [torch.randn(s) for s in SHAPES]
    runs, final = {}, {}
    for name, kwargs in {"default": {}, "fused": {"fused": True}}.items():
        params = [torch.nn.Parameter(b.clone()) for b in base]
        for p, g in zip(params, grads):
            p.grad = g
        runs[name] = seconds_per_step(params, args.repeats, **kwargs)
        final[name] = params
    diff = max((a - b).abs().max().item() for a, b in zip(final["default"], final["fused"]))
    result = {
        "device": f"cpu ({torch.get_num_threads()} threads)",
        "machine": cpu_description(),
        "parameters": sum(b.numel() for b in base),
        "repeats": args.repeats,
        "default_s": runs["default"],
        "fused_s": runs["fused"],
        "fused_over_default": runs["fused"] / runs["default"],
        "max_abs_difference": diff,
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
