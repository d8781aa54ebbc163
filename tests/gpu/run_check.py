"""``make gpu-check``: the GPU tests and two chapters on a CUDA machine, timed, with the device recorded.

Steps, each with its own time limit, all inside a total budget (default 8 minutes):

1. ``prepare`` — the embedded backbones and corpora are fetched and cached (a no-op once cached);
2. ``tests`` — ``pytest tests/gpu`` with a JUnit XML;
3. ``chapter-02``, ``chapter-08`` — the chapters executed under nbmake with
   ``PROMPT_LEARNING_PROFILE=gpu`` and ``PROMPT_LEARNING_OFFLINE_STANDINS=1``: the gpu profile's code
   paths with the embedded backbones standing in for its hub ones (no hub is needed).

It writes ``gpu-check-<device>-<UTC time>.xml`` (every step's JUnit suites in one file) and ``.json``
(device, capability, library versions, each step's status and time, each test's time) under
``benchmarks/results/``. Without a CUDA GPU it stops at once, writes nothing and exits with 2;
a failed, timed-out or skipped step makes the exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
STANDIN_ENV = {"PROMPT_LEARNING_PROFILE": "gpu", "PROMPT_LEARNING_OFFLINE_STANDINS": "1"}
PREPARE = (
    "from prompt_learning.artifacts import ARTIFACTS, extracted\n"
    "for key in ARTIFACTS:\n    print(key, extracted(key), flush=True)\n"
    "from prompt_learning.backbones import EMBEDDED, load_backbone\n"
    "for name in EMBEDDED:\n    print(name, load_backbone(name, device='cpu').num_parameters(), flush=True)\n"
)


@dataclass
class Step:
    name: str
    command: list[str]
    status: str = "not run"  # passed | failed | timeout | skipped
    seconds: float = 0.0
    returncode: int | None = None
    limit_s: float = 0.0
    junit: str | None = None  # path of the step's JUnit XML, while the run lasts
    tests: list[dict] = field(default_factory=list)  # name, seconds, outcome
    note: str = ""
    output_tail: str = ""


def device_info() -> dict:
    """The GPU and the software the check ran with."""
    import torch
    import transformers

    from prompt_learning.precision import auto_precision

    props = torch.cuda.get_device_properties(0)
    major, minor = torch.cuda.get_device_capability(0)
    return {
        "device": torch.cuda.get_device_name(0),
        "capability": f"{major}.{minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "device_count": torch.cuda.device_count(),
        "auto_precision": auto_precision("cuda"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
    }


def run_step(step: Step, limit_s: float, env: dict[str, str]) -> Step:
    """Run ``step.command`` for at most ``limit_s`` seconds; on time-out its whole process group ends."""
    step.limit_s = round(limit_s, 1)
    print(f"== {step.name} (limit {limit_s:.0f} s): {' '.join(step.command)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        step.command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=limit_s)
        step.status = "passed" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        _end(proc)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:  # a descendant still holds the pipe open
            out = ""
        step.status = "timeout"
    step.seconds, step.returncode = round(time.perf_counter() - start, 2), proc.returncode
    step.output_tail = (out or "")[-4000:]
    sys.stdout.write(out or "")
    print(f"== {step.name}: {step.status} in {step.seconds:.1f} s", flush=True)
    return step


def _end(proc: subprocess.Popen) -> None:
    """End ``proc``, its process group and its descendants (a Jupyter kernel runs in its own session)."""
    try:
        import psutil

        descendants = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        descendants = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        for child in descendants:
            with contextlib.suppress(Exception):
                child.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
        if not any(child.is_running() for child in descendants):
            return


def junit_tests(path: Path) -> list[dict]:
    """Each test case of a JUnit XML: its name, time and outcome."""
    if not path.exists():
        return []
    tests = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        tests.append(
            {
                "name": f"{case.get('classname', '')}::{case.get('name')}".lstrip(":"),
                "seconds": float(case.get("time", 0)),
                "outcome": outcome,
            }
        )
    return tests


def merge_junit(parts: dict[str, Path], out: Path) -> None:
    """The ``<testsuite>`` elements of several JUnit files in one ``<testsuites>``, named by step."""
    root = ET.Element("testsuites", name="gpu-check")
    for step, path in parts.items():
        if not path.exists():
            continue
        got = ET.parse(path).getroot()
        for suite in [got] if got.tag == "testsuite" else got.iter("testsuite"):
            suite.set("name", step)
            root.append(suite)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "gpu"


def chapter_path(number: str) -> Path:
    found = sorted((ROOT / "chapters").glob(f"{number}_*.ipynb"))
    if not found:
        raise SystemExit(f"gpu-check: no chapter {number}_*.ipynb in {ROOT / 'chapters'}")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GPU tests and chapters on a CUDA machine, timed.")
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "benchmarks" / "results",
        help="folder for the XML and JSON (default benchmarks/results)",
    )
    parser.add_argument("--chapters", nargs="*", default=["02", "08"], help="chapter numbers to execute")
    parser.add_argument("--budget", type=float, default=480, help="seconds for all steps together")
    parser.add_argument("--prepare-limit", type=float, default=150, help="seconds to fetch the artifacts")
    parser.add_argument("--tests-limit", type=float, default=120, help="seconds for pytest tests/gpu")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print(
            "gpu-check needs a CUDA GPU and torch sees none (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). Nothing was run or written. "
            "Run it on a CUDA machine, with a CUDA build of torch in the environment.",
            file=sys.stderr,
        )
        return 2

    started, deadline = datetime.now(timezone.utc), time.perf_counter() + args.budget
    info = device_info()
    print(
        f"gpu-check on {info['device']} (capability {info['capability']}), torch {info['torch']}, "
        f"transformers {info['transformers']}",
        flush=True,
    )
    py = [sys.executable]
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        prepare = run_step(
            Step("prepare", [*py, "-c", PREPARE]),
            min(args.prepare_limit, args.budget / 4),
            {**OFFLINE, "PIP_RETRIES": "1", "PIP_DEFAULT_TIMEOUT": "20"},
        )
        steps.append(prepare)
        junit = Path(tmp) / "tests.xml"
        tests = Step(
            "tests",
            [*py, "-m", "pytest", "tests/gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
            junit=str(junit),
        )
        steps.append(run_step(tests, min(args.tests_limit, deadline - time.perf_counter()), OFFLINE))
        for i, number in enumerate(args.chapters):
            nb = chapter_path(number)
            junit = Path(tmp) / f"chapter-{number}.xml"
            limit = (deadline - time.perf_counter()) / (len(args.chapters) - i)  # the rest, shared
            step = Step(
                f"chapter-{number}",
                [
                    *py,
                    "-m",
                    "pytest",
                    "--nbmake",
                    str(nb.relative_to(ROOT)),
                    f"--nbmake-timeout={max(int(limit) - 15, 1)}",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--junitxml={junit}",
                ],
                junit=str(junit),
            )
            if prepare.status != "passed":
                step.status, step.note = (
                    "skipped",
                    (
                        "the embedded backbones and corpora are neither cached "
                        "nor downloadable here (see the prepare step)"
                    ),
                )
                steps.append(step)
                continue
            steps.append(run_step(step, limit, {**OFFLINE, **STANDIN_ENV}))
        for step in steps:
            step.tests = junit_tests(Path(step.junit)) if step.junit else []
        stem = f"gpu-check-{slug(info['device'])}-{started.strftime('%Y%m%dT%H%M%SZ')}"
        args.results.mkdir(parents=True, exist_ok=True)
        merge_junit({s.name: Path(s.junit) for s in steps if s.junit}, args.results / f"{stem}.xml")
    ok = all(s.status == "passed" for s in steps)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "ok": ok,
        **info,
        "budget_s": args.budget,
        "seconds": round(sum(s.seconds for s in steps), 2),
        "chapter_env": STANDIN_ENV,
        "steps": [{k: v for k, v in asdict(s).items() if k != "junit"} for s in steps],
    }
    (args.results / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    for s in steps:
        print(f"{s.name:>12}: {s.status:<8} {s.seconds:7.1f} s  {s.note}")
    print(f"wrote {args.results / stem}.xml and .json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
