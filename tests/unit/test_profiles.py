from types import SimpleNamespace

import pytest

from prompt_learning.profiles import PROFILES, STANDIN_ENV, ProfileError, get_profile, gpu_memory_needed

GiB = 2**30
BACKBONES = ("causal_lm", "encoder", "masked_lm", "chinese_mlm")


def fake_gpu(monkeypatch, memory: int, capability=(7, 5), name="Tesla T4"):
    """A CUDA GPU as far as torch.cuda's queries go."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.get_device_properties", lambda i: SimpleNamespace(total_memory=memory))
    monkeypatch.setattr("torch.cuda.get_device_capability", lambda device=None: capability)
    monkeypatch.setattr("torch.cuda.get_device_name", lambda device=None: name)


@pytest.fixture
def colab(monkeypatch):
    monkeypatch.delenv("PROMPT_LEARNING_PROFILE", raising=False)
    monkeypatch.delenv(STANDIN_ENV, raising=False)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("PROMPT_LEARNING_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("cpu", n_eval=7).n_eval == 7


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("PROMPT_LEARNING_PROFILE", "huge")
    with pytest.raises(ProfileError, match="smoke.*cpu.*gpu.*t4.*rehearsal"):
        get_profile()


@pytest.mark.parametrize("name", ["gpu", "t4"])
def test_gpu_profiles_without_gpu_say_what_to_do(monkeypatch, name):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ProfileError, match="PROMPT_LEARNING_PROFILE=cpu"):
        get_profile(name)


def test_smoke_is_smaller_than_cpu_is_smaller_than_gpu():
    s, c, g = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    assert s.n_eval < c.n_eval < g.n_eval and s.steps < c.steps < g.steps
    assert c.causal_lm == "smollm2-135m" and c.encoder == "minilm-l6"  # embedded: runs offline


def test_chapters_read_sizes_and_hub_not_the_name():
    rows = {name: (p.sizes, p.hub) for name, p in PROFILES.items()}
    assert rows == {
        "smoke": ("smoke", False),
        "cpu": ("cpu", False),
        "gpu": ("gpu", True),
        "t4": ("gpu", True),
        "rehearsal": ("smoke", True),
    }
    assert all(p.chinese_mlm for p in PROFILES.values() if p.hub)


def test_rehearsal_is_the_gpu_profiles_backbones_at_smoke_sizes(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    r, g, s = get_profile("rehearsal"), PROFILES["gpu"], PROFILES["smoke"]  # a CPU is enough
    assert all(getattr(r, f) == getattr(g, f) for f in BACKBONES)
    for f in ("n_eval", "seeds", "shots", "icl_shots", "steps", "batch_size", "max_length"):
        assert getattr(r, f) == getattr(s, f), f
    assert r.mixed_precision == "bf16" and r.precision == "bf16"  # the mixed-precision branches run on a CPU
    text = r.describe()
    assert "profile 'rehearsal'" in text and "sizes 'smoke'" in text and "bf16" in text
    assert "HuggingFaceTB/SmolLM2-1.7B-Instruct" in text and "bert-base-chinese" in text


def test_t4_fits_a_16_gb_gpu_without_bf16(monkeypatch):
    t4 = PROFILES["t4"]
    assert t4.sizes == "gpu" and t4.hub and t4.mixed_precision == "auto"
    assert t4.causal_lm == "HuggingFaceTB/SmolLM2-360M-Instruct"
    fake_gpu(monkeypatch, 15 * GiB, capability=(7, 5))
    assert get_profile("t4").precision == "fp16"  # "auto" on compute capability 7.5
    assert "precision fp16 (mixed_precision 'auto')" in get_profile("t4").describe()
    fake_gpu(monkeypatch, 80 * GiB, capability=(8, 0), name="NVIDIA A100-SXM4-80GB")
    assert get_profile("gpu").precision == "bf16"


def test_cpu_profiles_follow_the_precision_rule(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    for name in ("smoke", "cpu"):
        p = PROFILES[name]
        assert p.mixed_precision == "auto"  # resolved where used: fp32, or bf16 on a CPU with AMX
        assert f"precision {'fp32' if p.precision == 'no' else p.precision} " in p.describe()
    monkeypatch.setenv("PROMPT_LEARNING_CPU_BF16", "0")
    assert "precision fp32 (mixed_precision 'auto')" in PROFILES["smoke"].describe()


@pytest.mark.parametrize(
    "memory, expected",
    [
        (15 * GiB, "t4"),  # a T4: 15.8 GB, 14.7 GiB
        (16 * GiB, "t4"),
        (80 * GiB, "gpu"),  # A100 / H100 80 GB
        (141 * GiB, "gpu"),
    ],
)
def test_colab_chooses_by_gpu_memory(monkeypatch, colab, memory, expected):
    fake_gpu(monkeypatch, memory)
    assert get_profile().name == expected


def test_a_gpu_smaller_than_the_gpu_profile_needs_gets_t4(monkeypatch, colab):
    need = gpu_memory_needed()
    assert 16 * GiB < need < 80 * GiB
    fake_gpu(monkeypatch, need - GiB)
    assert get_profile().name == "t4"
    fake_gpu(monkeypatch, need)
    assert get_profile().name == "gpu"


def test_cpu_when_not_on_colab_or_without_a_gpu(monkeypatch, colab):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert get_profile().name == "cpu"
    fake_gpu(monkeypatch, 80 * GiB)
    monkeypatch.delenv("COLAB_RELEASE_TAG")
    assert get_profile().name == "cpu"


@pytest.mark.parametrize("name", ["gpu", "t4"])
def test_offline_standins_keep_sizes_and_precision(monkeypatch, name):
    fake_gpu(monkeypatch, 80 * GiB, capability=(9, 0), name="NVIDIA H200")
    monkeypatch.setenv(STANDIN_ENV, "1")
    p, original = get_profile(name), PROFILES[name]
    names = (p.causal_lm, p.encoder, p.masked_lm, p.chinese_mlm)
    assert names == ("smollm2-135m", "minilm-l6", "tiny-roberta", None)
    assert not p.hub and p.sizes == original.sizes and p.mixed_precision == original.mixed_precision
    assert (p.steps, p.n_eval, p.seeds) == (original.steps, original.n_eval, original.seeds)
    assert "offline stand-ins" in p.describe() and original.causal_lm in p.describe()
    monkeypatch.delenv(STANDIN_ENV)
    assert get_profile(name).causal_lm == original.causal_lm


def test_standins_leave_the_rehearsal_alone(monkeypatch):
    monkeypatch.setenv(STANDIN_ENV, "1")
    assert get_profile("rehearsal").causal_lm == PROFILES["gpu"].causal_lm


def test_bad_fields_are_refused():
    with pytest.raises(ProfileError, match="sizes"):
        PROFILES["cpu"].__class__(**{**PROFILES["cpu"].__dict__, "sizes": "huge"})
    with pytest.raises(ProfileError, match="mixed_precision"):
        PROFILES["cpu"].__class__(**{**PROFILES["cpu"].__dict__, "mixed_precision": "fp8"})
