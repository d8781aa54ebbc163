"""Soft prompts on SmolLM2 (GQA, tied embeddings): PEFT's logits, checkpoints, and a prompt that learns."""

import pytest
import torch
from peft import PromptEncoderConfig, get_peft_model
from peft import PromptTuningConfig as PeftPromptTuningConfig

from prompt_learning import Verbalizer, evaluate, few_shot, fit, load_backbone, movie_reviews, stratified_head
from prompt_learning.checkpoints import CheckpointError, load_prompt, save_prompt
from prompt_learning.p_tuning import PTuning, PTuningConfig, virtual_tokens
from prompt_learning.soft_prompts import PromptTuning, PromptTuningConfig

pytestmark = pytest.mark.embedded

TEMPLATE = "Review: {text}\nSentiment: {mask}"
WORDS = Verbalizer({"negative": "negative", "positive": "positive"})
TEXTS = ["A masterpiece: moving, funny and beautifully acted.", "A dull, lifeless and painfully boring mess."]


@pytest.fixture(scope="module")
def smollm2():
    return load_backbone("smollm2-135m")


def unpadded(method, text):
    b = method.encode([text])
    real = b["input_ids"][b["virtual_index"] < 0].unsqueeze(0)  # (1, T): the hard tokens only
    return real, torch.ones_like(real)


def test_prompt_tuning_matches_peft(smollm2):
    ours = PromptTuning(
        smollm2, TEMPLATE, WORDS, PromptTuningConfig(num_virtual_tokens=8, init="SAMPLE_VOCAB", max_length=48)
    )
    peft = get_peft_model(smollm2.model, PeftPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=8))
    with torch.no_grad():
        peft.prompt_encoder["default"].embedding.weight.copy_(ours.prompt)
        for text in TEXTS:
            ids, mask = unpadded(ours, text)
            theirs = peft(input_ids=ids, attention_mask=mask).logits[:, -1]
            torch.testing.assert_close(ours.word_logits([text]), theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("encoder", ["LSTM", "MLP"])
def test_p_tuning_matches_peft(smollm2, encoder):
    ours = PTuning(
        smollm2,
        virtual_tokens(6) + TEMPLATE,
        WORDS,
        PTuningConfig(encoder=encoder, encoder_hidden_size=64, max_length=48),
    )
    peft = get_peft_model(
        smollm2.model,
        PromptEncoderConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=6,
            encoder_reparameterization_type=encoder,
            encoder_hidden_size=64,
        ),
    )
    peft.prompt_encoder["default"].load_state_dict(ours.encoder.state_dict())
    with torch.no_grad():
        for text in TEXTS:
            ids, mask = unpadded(ours, text)
            theirs = peft(input_ids=ids, attention_mask=mask).logits[:, -1]
            torch.testing.assert_close(ours.word_logits([text]), theirs, atol=1e-4, rtol=1e-4)


def test_checkpoint_round_trip_and_refusal(smollm2, tmp_path):
    method = PTuning(
        smollm2, "[P0][P1] {text} [P2] Sentiment: {mask}", WORDS, PTuningConfig(encoder="MLP", max_length=48)
    )
    save_prompt(method, tmp_path / "ckpt")
    again = load_prompt(tmp_path / "ckpt", smollm2)
    with torch.no_grad():
        assert torch.equal(method(TEXTS), again(TEXTS))
    with pytest.raises(CheckpointError, match="smollm2-135m"):
        load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))


def test_a_soft_prompt_learns_movie_reviews(smollm2):
    data = movie_reviews()
    train, test = few_shot(data["pool"], 8, seed=0), stratified_head(data["test"], 32)
    words = Verbalizer({"negative": "terrible", "positive": "great"})
    config = PromptTuningConfig(
        num_virtual_tokens=8, init_text="Is this movie review positive?", max_length=48
    )
    method = PromptTuning(smollm2, "{text} It was {mask}.", words, config)
    before = evaluate(method, test)["accuracy"]
    hist = fit(method, train, steps=8, lr=3e-2, batch_size=8, seed=0, progress=False)
    assert hist.final_loss < hist.loss[0]
    assert evaluate(method, test)["accuracy"] > before  # the biased "It was" template gets fixed
