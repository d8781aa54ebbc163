"""P-tuning: PEFT's numbers, template positions and anchors, the encoder, freezing it, errors."""

import pytest
import torch
from peft import PromptEncoderConfig, get_peft_model

from prompt_learning import Verbalizer, fit, load_backbone
from prompt_learning.p_tuning import (
    PromptEncoder,
    PromptEncoderType,
    PTuning,
    PTuningConfig,
    virtual_tokens,
)
from prompt_learning.soft_prompts import PromptTuning, PromptTuningConfig, SoftPromptError
from prompt_learning.templates import Template, TemplateError

WORDS = Verbalizer({"negative": "bad", "positive": "good"})
MIXED = "[P0][P1] {text} [P2] It was {mask}."


def make(name="tiny-llama", template=MIXED, **kw) -> PTuning:
    return PTuning(load_backbone(name), template, WORDS, PTuningConfig(max_length=64, **kw))


@pytest.mark.parametrize("encoder", ["LSTM", "MLP"])
def test_same_logits_as_peft_p_tuning(encoder):
    """PEFT puts every virtual token first: compare on a prefix-only template."""
    ours = make(template=virtual_tokens(4) + "{text} It was {mask}.", encoder=encoder, encoder_hidden_size=16)
    peft = get_peft_model(
        ours.model,
        PromptEncoderConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=4,
            encoder_reparameterization_type=encoder,
            encoder_hidden_size=16,
        ),
    )
    peft.prompt_encoder["default"].load_state_dict(ours.encoder.state_dict())  # same names and shapes
    for text in ["a fine film", "a movie that was boring and dull"]:
        b = ours.encode([text])
        real = b["input_ids"][b["virtual_index"] < 0].unsqueeze(0)  # (1, T - 4): PEFT adds the prompt itself
        with torch.no_grad():
            theirs = peft(input_ids=real, attention_mask=torch.ones_like(real)).logits[:, -1]
            mine = ours.word_logits([text])
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


def test_template_places_virtual_tokens_among_anchors():
    t = Template(MIXED)
    assert t.num_virtual_tokens == 3 and t.anchors == ["It was", "."] and t.mask_space
    pt = make()
    b = pt.encode(["a fine film", "a movie that was boring and dull"])
    hard = Template(" {text} It was {mask}.").encode(pt.tokenizer, {"text": ["a fine film"]}, 64, causal=True)
    row = b["virtual_index"][0][b["attention_mask"][0].bool()]
    anchor = len(pt.tokenizer(" It was", add_special_tokens=False)["input_ids"])
    assert (
        row.tolist()[:2] == [0, 1] and row.tolist()[-anchor - 1] == 2 and (row[2 : -anchor - 1] == -1).all()
    )
    real = b["input_ids"][0][b["attention_mask"][0].bool() & (b["virtual_index"][0] < 0)]
    assert real.tolist() == hard["input_ids"][0].tolist()  # anchors and text tokenised as in running text


def test_positions_counted_over_interleaved_virtual_tokens():
    pt = make(encoder="MLP")
    texts = ["a fine film", "a movie that was boring and dull"]
    with torch.no_grad():
        torch.testing.assert_close(pt(texts), torch.cat([pt(texts[:1]), pt(texts[1:])]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta"])
def test_masked_lm_with_virtual_tokens_after_the_mask(name):
    pt = make(name, template="[P0] {text} It was {mask} [P1].")
    b = pt.encode(["a fine film", "a movie that was boring and dull"])
    rows = torch.arange(2)
    assert (b["input_ids"][rows, b["mask_pos"]] == pt.tokenizer.mask_token_id).all()
    assert (b["virtual_index"][rows, b["mask_pos"] + 1] == 1).all()
    assert pt(["a fine film"]).shape == (1, 2)


@pytest.mark.parametrize("encoder", ["LSTM", "MLP", "NONE"])
def test_only_prompt_parameters_train(encoder, sentiment_toy):
    pt = make(encoder=encoder)
    frozen = {n: p.clone() for n, p in pt.model.named_parameters()}
    names = {n for n, p in pt.named_parameters() if p.requires_grad}
    assert names == ({"prompt"} if encoder == "NONE" else {n for n in names if n.startswith("encoder.")})
    before = pt.prompt_embeddings().detach().clone()
    hist = fit(
        pt, sentiment_toy.map(lambda r: {"label": 1}), steps=12, lr=0.01, batch_size=4, seed=0, progress=False
    )
    assert hist.loss[-1] < hist.loss[0] and not torch.equal(pt.prompt_embeddings(), before)
    assert all(torch.equal(p, frozen[n]) for n, p in pt.model.named_parameters())


def test_lstm_ties_the_virtual_tokens_together():
    enc = PromptEncoder(4, 8, PromptEncoderType.LSTM, hidden_size=6)
    out = enc()
    out[0].sum().backward()  # the first virtual token depends on every input vector (bidirectional)
    assert out.shape == (4, 8) and (enc.embedding.weight.grad.abs().sum(-1) > 0).all()
    mlp = PromptEncoder(4, 8, PromptEncoderType.MLP, hidden_size=6)
    mlp()[0].sum().backward()  # the MLP maps each token on its own
    assert (mlp.embedding.weight.grad.abs().sum(-1) > 0).tolist() == [True, False, False, False]


def test_the_lstm_runs_in_fp32_inside_cpu_bf16_autocast():
    """oneDNN has no bf16 LSTM on CPUs without AVX512: the encoder's LSTM leaves autocast on a CPU,
    so it runs (and gives the fp32 numbers) on every CPU."""
    enc = PromptEncoder(4, 8, PromptEncoderType.LSTM, hidden_size=6)
    seen = []
    enc.lstm_head.register_forward_hook(lambda m, args, out: seen.append(out[0].dtype))
    with torch.autocast("cpu", torch.bfloat16):
        enc()
    assert seen == [torch.float32]


def test_default_sizes_follow_the_paper():
    lstm, mlp = make(encoder="LSTM"), make(encoder="MLP")
    assert lstm.encoder.lstm_head.hidden_size == 16 and lstm.encoder.lstm_head.num_layers == 2  # H/2 each way
    assert mlp.encoder.mlp_head[0].out_features == 32


def test_freeze_encoder_keeps_the_outputs():
    pt = make(encoder="LSTM")
    texts = ["a fine film", "boring and dull"]
    with torch.no_grad():
        before = pt(texts)
        pt.freeze_encoder()
        after = pt(texts)
    assert pt.encoder is None and [n for n, _ in pt.named_parameters() if "prompt" in n] == ["prompt"]
    assert [p.shape for p in pt.parameters() if p.requires_grad] == [(3, 32)]
    assert pt.trainable_parameters() == 3 * 32
    torch.testing.assert_close(before, after)
    assert pt.freeze_encoder() is pt  # a second call does nothing
    with pytest.raises(SoftPromptError, match="no prompt encoder"):
        make(encoder="NONE").freeze_encoder()


def test_seed_fixes_the_encoder():
    a, b, c = (make(encoder="MLP", seed=s).prompt_embeddings() for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_virtual_tokens_helper():
    assert virtual_tokens(3) == "[P0][P1][P2]" and virtual_tokens(2, start=3) == "[P3][P4]"


# --- bad input -------------------------------------------------------------------------------


def test_template_without_virtual_tokens_is_refused():
    with pytest.raises(SoftPromptError, match="has no virtual tokens"):
        make(template="{text} It was {mask}.")


def test_badly_numbered_virtual_tokens_are_refused():
    with pytest.raises(TemplateError, match=r"number them \[P0\] to \[P1\], each once"):
        Template("[P0] {text} [P2] It was {mask}.")
    with pytest.raises(TemplateError, match="each once"):
        Template("[P0] {text} [P0] It was {mask}.")


def test_template_without_text_slot_is_refused():
    with pytest.raises(TemplateError, match=r"no input slot.*add \{text\}"):
        Template("[P0][P1] It was {mask}.")


def test_template_without_mask_is_refused():
    with pytest.raises(TemplateError, match="exactly one"):
        Template("[P0] {text} It was good.")


@pytest.mark.parametrize("bad", ["GRU", "transformer", ""])
def test_unknown_encoder_type_is_refused(bad):
    with pytest.raises(ValueError, match=r"unknown prompt encoder type.*LSTM.*MLP"):
        PTuningConfig(encoder=bad)


def test_virtual_token_after_the_mask_of_a_causal_lm_is_refused():
    with pytest.raises(TemplateError, match=r"\[P1\].*after \{mask\}.*cannot affect"):
        make(template="[P0] {text} It was {mask} [P1].")


def test_template_too_long_for_max_length_is_refused():
    # the hard words alone exceed max_length (the virtual tokens come on top and do not count)
    with pytest.raises(TemplateError, match="raise max_length"):
        PTuning(
            load_backbone("tiny-llama"),
            virtual_tokens(2) + " {text} All in all, after some thought, the film was {mask}.",
            WORDS,
            PTuningConfig(max_length=6),
        )


def test_virtual_tokens_come_on_top_of_max_length_as_in_prompt_tuning():
    """The method contract: max_length is the text and hard template; n virtual tokens add n positions.
    P-tuning with its virtual tokens in front keeps the same text tokens as prompt tuning."""
    backbone = load_backbone("tiny-llama")
    long = ["word " * 200]
    pt = PTuning(backbone, virtual_tokens(5) + "{text} It was {mask}.", WORDS, PTuningConfig(max_length=24))
    tuning = PromptTuning(
        backbone, "{text} It was {mask}.", WORDS, PromptTuningConfig(5, init="RANDOM", max_length=24)
    )
    a, b = pt.encode(long), tuning.encode(long)
    assert a["input_ids"].shape == b["input_ids"].shape == (1, 24 + 5)
    real = lambda e: e["input_ids"][e["virtual_index"] < 0]  # noqa: E731
    assert torch.equal(real(a), real(b))


def test_the_encoder_and_the_anchors_by_hand_equal_p_tuning():
    """Chapter 6's from-scratch cell: BiLSTM → MLP over z, virtual tokens at the [Pi] slots, anchors embedded."""
    pt = make(encoder="LSTM")
    enc, d = pt.encoder, pt.hidden_size
    lstm = torch.nn.LSTM(d, d // 2, num_layers=2, bidirectional=True, batch_first=True)
    lstm.load_state_dict(enc.lstm_head.state_dict())
    with torch.no_grad():
        v = enc.mlp_head[2](torch.relu(enc.mlp_head[0](lstm(enc.embedding.weight[None])[0])))[0]  # (n, d)
        b = pt.encode(["a fine film"])
        words = pt.model.get_input_embeddings()(b["input_ids"])
        slot = b["virtual_index"]
        x = torch.where((slot >= 0)[..., None], v[slot.clamp(min=0)], words)
        torch.testing.assert_close(v, enc())
        torch.testing.assert_close(x, pt.embed(b["input_ids"], slot))
