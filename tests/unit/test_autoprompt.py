"""AutoPrompt: the candidate scores are the first-order estimate −E·∇L, a step never raises the batch
loss, the search is seeded, and the result is a hard template."""

import pytest
import torch

from prompt_learning import ClozeClassifier, TemplateError, Verbalizer, load_backbone
from prompt_learning.autoprompt import AutoPrompt, AutoPromptConfig, AutoPromptError

WORDS = Verbalizer({"negative": ["bad", "awful"], "positive": "good"})


def _by_hand_scores(ap: AutoPrompt, texts, labels, position) -> torch.Tensor:
    """The estimate written out: embeddings with grad, a plain forward, log-softmax, ∇, −E·g."""
    tok, model = ap.tokenizer, ap.model
    b = ap.template.encode(tok, {"text": texts}, 128, causal=ap.causal)
    ids = torch.where(
        b["virtual_index"] >= 0, ap.trigger_ids[b["virtual_index"].clamp(min=0)], b["input_ids"]
    )
    E = model.get_input_embeddings().weight.detach()  # (V, H)
    embeds = E[ids].clone().requires_grad_(True)  # (B, T, H)
    mask = b["attention_mask"]
    extra = {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)} if ap.causal else {}  # left padding
    logits = model(inputs_embeds=embeds, attention_mask=mask, **extra).logits  # (B, T, V)
    rows = torch.arange(len(texts))
    at = torch.full((len(texts),), ids.shape[1] - 1) if ap.causal else b["mask_pos"]
    logp = torch.log_softmax(logits[rows, at], -1)  # (B, V)
    per_class = torch.stack([logp[:, c].exp().sum(-1).log() for c in ap.label_ids], -1)  # log Σ_w p(w)
    loss = -per_class[rows, torch.tensor(labels)].mean()
    loss.backward()
    grad = embeds.grad[b["virtual_index"] == position].sum(0)  # (H,): summed over the batch
    return -(E @ grad)


@pytest.mark.parametrize(
    "name, template",
    [("tiny-bert", "{text} [P0][P1] it was {mask}."), ("tiny-gpt2", "[P0] {text} [P1][P2] it was {mask}")],
)
def test_candidate_scores_are_the_first_order_estimate(name, template):
    ap = AutoPrompt(load_backbone(name), template, WORDS)
    ap.trigger_ids[1] = ap.tokenizer(" movie", add_special_tokens=False)["input_ids"][0]
    texts, labels = ["a great film", "i hate this plot", "good fun"], [1, 0, 1]
    b = ap.encode({"text": texts})
    for position in range(ap.num_triggers):
        got = ap.candidate_scores(b, torch.tensor(labels), position)
        torch.testing.assert_close(got, _by_hand_scores(ap, texts, labels, position), atol=1e-5, rtol=1e-4)
    assert got.shape == (len(ap.tokenizer),)


@pytest.mark.parametrize(
    "name, template, loss",
    [
        ("tiny-bert", "{text} [P0][P1][P2] {mask}.", "vocabulary"),
        ("tiny-bert", "{text} [P0][P1][P2] {mask}.", "classes"),
        ("tiny-llama", "{text} [P0][P1] it was {mask}", "vocabulary"),
    ],
)
def test_a_step_never_raises_the_batch_loss(name, template, loss, sentiment_toy):
    ap = AutoPrompt(load_backbone(name), template, WORDS, AutoPromptConfig(num_candidates=5, loss=loss))
    b = ap.encode({"text": sentiment_toy["text"]})
    y = torch.tensor(sentiment_toy["label"])
    improved = 0
    for i in range(6):
        step = ap.step(b, y, i % ap.num_triggers)
        assert step.loss_after <= step.loss_before
        assert float(ap.loss(b, y)) == pytest.approx(step.loss_after, abs=1e-6)  # the kept triggers' loss
        assert len(step.candidates) == 5 and step.before not in step.candidates
        improved += step.loss_after < step.loss_before
    assert improved > 0  # on a random tiny model some swap helps


def test_search_is_seeded_and_returns_a_hard_template(sentiment_toy):
    def run(seed):
        ap = AutoPrompt(
            load_backbone("tiny-bert"),
            "{text} [P0][P1] it was {mask}.",
            WORDS,
            AutoPromptConfig(num_iterations=5, batch_size=4, num_candidates=4, seed=seed),
        )
        return ap, ap.search(sentiment_toy, mixed_precision="no")

    ap, result = run(0)
    _, again = run(0)
    assert result.trigger_ids == again.trigger_ids and result.losses == again.losses
    assert len(result.losses) == len(result.steps) == 5
    assert all(s.loss_after <= s.loss_before for s in result.steps)
    words = [ap.tokenizer.decode([i]).strip() for i in result.trigger_ids]
    assert result.template == f"{{text}} {words[0]} {words[1]} it was {{mask}}."
    label_ids = set(WORDS.flat_ids(ap.label_ids))
    assert not label_ids & set(result.trigger_ids)  # label words are filtered out of the triggers
    assert not set(result.trigger_ids) & set(ap.tokenizer.all_special_ids)
    # the text form is a hard prompt a cloze classifier reads, with the same ids and scores
    clf = ClozeClassifier(load_backbone("tiny-bert"), result.template, WORDS)
    with torch.no_grad():
        exact = ap(sentiment_toy["text"])
        cloze_ids = clf.encode(sentiment_toy["text"])["input_ids"]
    assert torch.equal(cloze_ids, ap.input_ids(ap.encode({"text": sentiment_toy["text"]})))
    assert exact.shape == (len(sentiment_toy), 2)


def test_template_text_spaces_adjacent_markers():
    ap = AutoPrompt(load_backbone("tiny-gpt2"), "[P0][P1] {text} it was{mask}", WORDS)
    ap.trigger_ids.copy_(
        torch.tensor([ap.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" the", " movie")])
    )
    assert ap.template_text() == "the movie {text} it was{mask}"


def test_bad_set_ups_are_refused_before_compute(sentiment_toy):
    with pytest.raises(AutoPromptError, match=r"no trigger tokens: mark them \[P0\]"):
        AutoPrompt(load_backbone("tiny-bert"), "{text} it was {mask}.", WORDS)
    with pytest.raises(TemplateError, match="after {mask}"):
        AutoPrompt(load_backbone("tiny-gpt2"), "{text} it was {mask} [P0]", WORDS)
    with pytest.raises(AutoPromptError, match="one-token word"):
        AutoPrompt(
            load_backbone("tiny-bert"), "{text} [P0] {mask}.", WORDS, AutoPromptConfig(init_token="the film")
        )
    with pytest.raises(AutoPromptError, match="positive integer"):
        AutoPromptConfig(num_candidates=0)
    with pytest.raises(AutoPromptError, match="'vocabulary'"):
        AutoPromptConfig(loss="hinge")
    with pytest.raises(AutoPromptError, match="LM head"):
        AutoPrompt(load_backbone("tiny-bart"), "{text} [P0] {mask}.", WORDS)
    ap = AutoPrompt(
        load_backbone("tiny-bert"), "{text} [P0] {mask}.", Verbalizer({"positive": "good", "negative": "bad"})
    )
    with pytest.raises(Exception, match="label order"):
        ap.search(sentiment_toy)
    with pytest.raises(AutoPromptError, match="not a trigger"):
        ap.candidate_scores(ap.encode({"text": ["a"]}), torch.tensor([0]), 3)


def test_checkpoint_spec_round_trips_the_triggers():
    ap = AutoPrompt(load_backbone("tiny-bert"), "{text} [P0][P1] {mask}.", WORDS)
    ap.trigger_ids.copy_(torch.tensor([7, 9]))
    back = AutoPrompt.from_checkpoint_spec(load_backbone("tiny-bert"), ap.checkpoint_spec())
    assert back.trigger_ids.tolist() == [7, 9] and back.template_text() == ap.template_text()
