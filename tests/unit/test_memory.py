import contextlib

import pytest
import torch

from prompt_learning.memory import (
    ARCHITECTURES,
    THROUGHPUT,
    Architecture,
    estimate_seconds,
    estimate_training_memory,
    layer_activation_bytes,
    training_flops,
)

# BERT-like: LayerNorm, GELU MLP of 4h, dropout; 1,000 parameters of which 800 are the embedding
TOY = Architecture("toy", hidden=8, layers=2, heads=2, kv_heads=2, intermediate=32, vocab=100, params=1000)


def test_full_fine_tuning_in_mixed_precision_by_hand():
    est = estimate_training_memory(TOY, "all", batch=2, seq_len=4, precision="bf16")
    sbh = 2 * 4 * 8
    per_layer = sbh * (8 + (3 * 2 + 4 * 2) + (1 + 2 * 4) * 2 + 2)  # norms, attention, MLP, dropout masks: 42
    logits = 2 * 100 * 4 * 2  # one position a row, fp32, logits + log-softmax
    assert est.activations == 2 * per_layer + 2 * sbh * 4 + logits == 7488
    assert (est.weights, est.gradients, est.optimizer_states, est.weight_copies) == (4000, 4000, 8000, 2000)
    assert est.total == 4000 + 4000 + 8000 + (2000 + 7488)


def test_fp32_and_frozen_backbones_by_hand():
    fp32 = estimate_training_memory(TOY, "all", 2, 4, "no")
    assert fp32.weight_copies == 0
    assert fp32.activations == 2 * 64 * (8 + (1 + 4) * 4 + (1 + 8) * 4 + 2) + 512 + 1600  # 66 a token-width
    prompt = estimate_training_memory(TOY, ("prompt", 10), 2, 4, "bf16")
    assert (prompt.gradients, prompt.optimizer_states, prompt.step_scratch) == (40, 80, 40)
    # frozen linears keep their weights, not their inputs
    assert prompt.activations == 2 * 64 * (8 + 4 * 2 + 4 * 2 + 2) + 512 + 1600
    assert prompt.total == 4000 + 40 + 80 + 2000 + prompt.activations


def test_the_optimizer_step_can_be_the_peak():
    est = estimate_training_memory(TOY, "all", 1, 1, "no")  # tiny activations, AdamW's scratch is larger
    assert est.step_scratch > est.activations and est.total == 16 * 1000 + est.step_scratch


def test_unfused_attention_adds_korthikantis_attention_matrix():
    fused = layer_activation_bytes(TOY, 2, 4, "bf16")
    eager = layer_activation_bytes(TOY, 2, 4, "bf16", fused_attention=False)
    assert eager - fused == 5 * TOY.heads * 4 * 4 * 2  # 5·a·s²·b bytes at 16-bit


def test_full_fine_tuning_of_smollm2_1_7b_in_fp32_needs_27_gb_before_activations():
    est = estimate_training_memory(ARCHITECTURES["HuggingFaceTB/SmolLM2-1.7B-Instruct"], "all", 1, 1, "no")
    before = est.weights + est.gradients + est.optimizer_states
    assert 27e9 < before < 28e9 and before == 16 * 1_711_376_384


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architectures_match_transformers_configs(name):
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertModel,
        LlamaConfig,
        LlamaForCausalLM,
        RobertaConfig,
        RobertaForMaskedLM,
    )

    a = ARCHITECTURES[name]
    shape = dict(
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        intermediate_size=a.intermediate,
    )
    if a.gated_mlp:
        cfg = LlamaConfig(**shape, num_key_value_heads=a.kv_heads, tie_word_embeddings=True)
        cls = LlamaForCausalLM
    elif "roberta" in name:
        cls, cfg = RobertaForMaskedLM, RobertaConfig(**shape, max_position_embeddings=514, type_vocab_size=1)
    else:
        cls, cfg = (BertModel if name == "minilm-l6" else BertForMaskedLM), BertConfig(**shape)
    with torch.device("meta"):
        model = cls(cfg)
    assert sum(p.numel() for p in model.parameters()) == a.params


def _saved_bytes(model, batch: int, seq: int, precision: str, train_weights: bool) -> tuple[int, int]:
    """(activation bytes, 16-bit weight-copy bytes) autograd keeps for one forward of ``model``'s body."""
    for p in model.parameters():
        p.requires_grad_(train_weights)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    # a weight's shape, or its transpose
    shapes = {tuple(p.shape)[::d] for p in model.parameters() if p.dim() == 2 for d in (1, -1)}
    acts, copies = {}, {}

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in params:
            into = copies if t.dtype == torch.bfloat16 and tuple(t.shape) in shapes else acts
            into[key] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(3, model.config.vocab_size, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, :5] = 0  # left padding, as the book's causal batches have
    autocast = torch.autocast("cpu", torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x = model.get_input_embeddings()(ids)
        if not train_weights:
            x = x.detach().requires_grad_(True)  # gradients flow to the input only, as for a soft prompt
        with autocast:
            model.model(inputs_embeds=x, attention_mask=mask)
    return sum(acts.values()), sum(copies.values())


@pytest.mark.parametrize("precision", ["no", "bf16"])
@pytest.mark.parametrize("trainable", ["all", ("prompt", 0)])
def test_activation_formula_matches_what_autograd_keeps(precision, trainable):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=500,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=172,
    )
    model = LlamaForCausalLM(cfg).train()
    body = sum(p.numel() for p in model.model.layers.parameters())
    arch = Architecture(
        "llama-small",
        64,
        2,
        4,
        2,
        172,
        500,
        body + 500 * 64 + 64,
        gated_mlp=True,
        rms_norm=True,
        dropout=False,
    )
    acts, copies = _saved_bytes(model, batch=3, seq=23, precision=precision, train_weights=trainable == "all")
    est = estimate_training_memory(arch, trainable, 3, 23, precision, logits_kept=0)
    assert est.activations == pytest.approx(acts, rel=0.1)
    if precision == "bf16":  # a 16-bit copy of every matmul weight (the norms stay fp32)
        assert copies == pytest.approx(2 * body, rel=0.01) and est.weight_copies >= copies


def test_flops_follow_6n_4n_2n():
    args = dict(tokens=1000, seq_len=4, logits_kept=0)
    full, prompt, forward = (training_flops(TOY, t, **args) for t in ("all", ("prompt", 5), "none"))
    assert full == 3 * forward and prompt == 2 * forward
    assert forward == 2 * 200 * 1000 + 4 * TOY.layers * 4 * TOY.hidden * 1000  # 2·N_body + attention
    seconds = estimate_seconds(
        TOY, "all", batch=10, seq_len=4, steps=25, device="cpu", precision="no", logits_kept=0
    )
    assert seconds == pytest.approx(full / THROUGHPUT[("cpu", "no")])


def test_prompt_encoder_count_matches_the_library():
    from prompt_learning.budgets import lstm_encoder_params
    from prompt_learning.p_tuning import PromptEncoder, PromptEncoderType

    encoder = PromptEncoder(6, 64, PromptEncoderType("LSTM"), hidden_size=32)  # PTuningConfig's default: H/2
    assert sum(p.numel() for p in encoder.parameters()) == lstm_encoder_params(64, 6)
