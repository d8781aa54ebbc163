"""The gpu-check runner: stops at once without a GPU, ends a step at its limit, merges JUnit files."""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

RUNNER = Path(__file__).with_name("run_check.py")
spec = importlib.util.spec_from_file_location("run_check", RUNNER)
run_check = sys.modules["run_check"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_check)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the check would run")
def test_without_a_gpu_it_stops_at_once_and_writes_nothing(tmp_path):
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(RUNNER), "--results", str(tmp_path / "results")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "needs a CUDA GPU" in done.stderr and "Nothing was run or written" in done.stderr
    assert not (tmp_path / "results").exists() and list(tmp_path.iterdir()) == []
    assert time.perf_counter() - start < 60


def test_a_step_is_ended_at_its_limit():
    sleep = "import time; print('started', flush=True); time.sleep(60)"
    step = run_check.Step("sleep", [sys.executable, "-c", sleep])
    start = time.perf_counter()
    run_check.run_step(step, limit_s=2, env={})
    assert step.status == "timeout" and time.perf_counter() - start < 30
    assert "started" in step.output_tail


def test_a_failing_step_is_recorded_as_failed():
    step = run_check.run_step(run_check.Step("fail", [sys.executable, "-c", "raise SystemExit(3)"]), 30, {})
    assert (step.status, step.returncode) == ("failed", 3)


def test_junit_files_merge_into_one_report_named_by_step(tmp_path):
    for name, outcome in (("a", ""), ("b", "<failure message='x'/>")):
        (tmp_path / f"{name}.xml").write_text(
            f'<testsuites><testsuite name="pytest" tests="1"><testcase classname="t" name="{name}" '
            f'time="0.5">{outcome}</testcase></testsuite></testsuites>'
        )
    parts = {"tests": tmp_path / "a.xml", "chapter-02": tmp_path / "b.xml", "absent": tmp_path / "no.xml"}
    run_check.merge_junit(parts, tmp_path / "all.xml")
    tests = run_check.junit_tests(tmp_path / "all.xml")
    assert [(t["name"], t["outcome"]) for t in tests] == [("t::a", "passed"), ("t::b", "failure")]
    root = run_check.ET.parse(tmp_path / "all.xml").getroot()
    assert [s.get("name") for s in root] == ["tests", "chapter-02"]


def test_result_names_are_safe_file_names():
    assert run_check.slug("NVIDIA H200 (SXM) 141GB") == "nvidia-h200-sxm-141gb"
    assert run_check.chapter_path("02").name.startswith("02_")
