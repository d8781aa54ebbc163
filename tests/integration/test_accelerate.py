"""The training loop runs unchanged under ``accelerate launch`` with two CPU processes.

Gradients are averaged across processes, so after training the prompt is identical on every rank
and equals a single-process run whose batch is the two processes' batches together.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

JOB = Path(__file__).with_name("accelerate_job.py")
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    multi, single = tmp_path / "multi", tmp_path / "single"
    multi.mkdir(), single.mkdir()
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    launcher = Path(sys.executable).with_name("accelerate")
    subprocess.run(
        [
            str(launcher),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            str(free_port()),
            str(JOB),
            str(multi),
            "2",
        ],
        check=True,
        env=env,
        timeout=300,
    )
    subprocess.run([sys.executable, str(JOB), str(single), "4"], check=True, env=env, timeout=300)
    r0, r1 = torch.load(multi / "rank0.pt"), torch.load(multi / "rank1.pt")
    one = torch.load(single / "rank0.pt")
    assert r0["world"] == r1["world"] == 2 and one["world"] == 1
    assert torch.equal(r0["prompt"], r1["prompt"])  # ranks stay in lock-step
    assert not torch.equal(r0["prompt"], PromptStart.initial())  # and they did train
    torch.testing.assert_close(r0["prompt"], one["prompt"], atol=1e-5, rtol=1e-4)
    mean_loss = [(a + b) / 2 for a, b in zip(r0["loss"], r1["loss"])]
    assert mean_loss == pytest.approx(one["loss"], abs=5e-6)


class PromptStart:
    @staticmethod
    def initial() -> torch.Tensor:
        from prompt_learning import Verbalizer, load_backbone
        from prompt_learning.soft_prompts import PromptTuning, PromptTuningConfig

        m = PromptTuning(
            load_backbone("tiny-llama"),
            "Review: {text} Sentiment: {mask}",
            Verbalizer({"negative": "negative", "positive": "positive"}),
            PromptTuningConfig(num_virtual_tokens=4, init_text="the movie was", max_length=64),
        )
        return m.prompt.detach()
