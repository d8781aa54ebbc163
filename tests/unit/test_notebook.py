import io
import os
import sys

import numpy as np
import torch

from prompt_learning import notebook


def test_glue_turns_array_scalars_into_python_numbers(monkeypatch):
    seen = {}
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: seen.__setitem__(name, value))
    notebook.glue("a", np.float64(0.5))
    notebook.glue("b", torch.tensor(3))
    notebook.glue("c", "text")
    assert seen == {"a": 0.5, "b": 3, "c": "text"}
    assert type(seen["a"]) is float and type(seen["b"]) is int


def test_start_prints_the_profile(capsys, monkeypatch):
    monkeypatch.setenv("PROMPT_LEARNING_PROFILE", "smoke")
    assert notebook.start().name == "smoke"
    assert "profile 'smoke'" in capsys.readouterr().out


class PipeStderr:
    """A stand-in for a kernel's sys.stderr whose fileno() is the kernel's own stderr: a pipe here."""

    def __init__(self):
        self.read_end, self.write_end = os.pipe()

    def fileno(self):
        return self.write_end

    def write(self, text):  # the bar's output (tqdm writes here outside a notebook)
        return len(text)

    def flush(self):
        pass

    def lines(self) -> list[str]:
        os.close(self.write_end)
        with os.fdopen(self.read_end) as f:
            return f.read().splitlines()


def test_progress_passes_the_items_through_and_logs_one_line_each(monkeypatch):
    stderr = PipeStderr()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert list(notebook.progress((x for x in "abc"), "runs")) == ["a", "b", "c"]
    lines = stderr.lines()
    assert [line.split(" (")[0] for line in lines] == ["runs: 1/3", "runs: 2/3", "runs: 3/3"]
    assert all(line.endswith(" s)") for line in lines)


def test_progress_needs_no_file_descriptor(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # no fileno(): no log lines, no error
    assert list(notebook.progress({"a": 1}.items(), "runs")) == [("a", 1)]
