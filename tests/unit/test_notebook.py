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
