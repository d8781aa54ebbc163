import pytest

from prompt_learning.profiles import PROFILES, ProfileError, get_profile


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("PROMPT_LEARNING_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("cpu", n_eval=7).n_eval == 7


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("PROMPT_LEARNING_PROFILE", "huge")
    with pytest.raises(ProfileError, match="smoke.*cpu.*gpu"):
        get_profile()


def test_gpu_profile_without_gpu_says_what_to_do(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ProfileError, match="PROMPT_LEARNING_PROFILE=cpu"):
        get_profile("gpu")


def test_smoke_is_smaller_than_cpu_is_smaller_than_gpu():
    s, c, g = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    assert s.n_eval < c.n_eval < g.n_eval and s.steps < c.steps < g.steps
    assert c.causal_lm == "smollm2-135m" and c.encoder == "minilm-l6"  # embedded: runs offline
