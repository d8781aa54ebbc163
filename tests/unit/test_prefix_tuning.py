"""Prefix tuning on tiny models: PEFT's prefix as an oracle, generation with a cache against a
full forward per step, the real-word initialisation, the MLP collapse, saving, errors."""

import pytest
import torch

from prompt_learning.backbones import load_backbone
from prompt_learning.checkpoints import CheckpointError, load_prompt, save_prompt
from prompt_learning.kv_prefix import PrefixError, prefixed_forward
from prompt_learning.prefix_tuning import PrefixInit, PrefixTuning, PrefixTuningConfig
from prompt_learning.soft_prompts import PromptTuning, PromptTuningConfig
from prompt_learning.text_generation import (
    encode_pairs,
    greedy_generate,
    lm_loss,
    rouge,
    truncate_tokens,
)
from prompt_learning.verbalizers import Verbalizer

RANDOM = dict(init=PrefixInit.RANDOM, reparameterize=False, init_std=1.0)


def test_prefix_equals_peft_prefix_tuning_with_the_same_key_values():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    peft_model = peft.get_peft_model(
        load_backbone("tiny-llama").model,
        peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
    )
    table = peft_model.prompt_encoder["default"].embedding.weight  # (P, L·2·H_kv·d)
    with torch.no_grad():
        table.normal_()
    ours = PrefixTuning(
        load_backbone("tiny-llama"), config=PrefixTuningConfig(num_virtual_tokens=4, **RANDOM)
    )
    ours.prompts.set_table(table)
    ids = torch.tensor([[5, 6, 7, 8, 9], [11, 12, 13, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # right padding: PEFT's positions are plain
    with torch.no_grad():
        want = peft_model(input_ids=ids, attention_mask=mask).logits
        got = prefixed_forward(ours.model, ours.prefix(), ids, mask).logits
    torch.testing.assert_close(got[mask.bool()], want[mask.bool()], atol=1e-5, rtol=1e-5)


def reference_greedy(model, prefix, ids, mask, steps: int, decoder_start: int | None = None):
    """A full forward per step, no cache: the definition greedy decoding must match."""
    out = []
    dec = None if decoder_start is None else torch.full((ids.shape[0], 1), decoder_start)
    for _ in range(steps):
        if dec is None:
            logits = prefixed_forward(model, prefix, ids, mask, use_cache=False).logits[:, -1]
            nxt = logits.argmax(-1)
            ids, mask = torch.cat([ids, nxt[:, None]], 1), torch.cat([mask, torch.ones_like(nxt)[:, None]], 1)
        else:
            logits = prefixed_forward(
                model, prefix, ids, mask, decoder_input_ids=dec, use_cache=False
            ).logits[:, -1]
            nxt = logits.argmax(-1)
            dec = torch.cat([dec, nxt[:, None]], 1)
        out.append(nxt)
    return torch.stack(out, 1)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2", "tiny-bart"])
def test_greedy_generation_with_a_prefix_equals_a_full_forward_per_step(name):
    b = load_backbone(name)
    # a large random prefix: the tiny random models then generate varied tokens
    pt = PrefixTuning(b, config=PrefixTuningConfig(num_virtual_tokens=3, **{**RANDOM, "init_std": 20.0}))
    enc = encode_pairs(b.tokenizer, ["the film was great", "a dull plot"], None, seq2seq=name == "tiny-bart")
    start = b.model.config.decoder_start_token_id if name == "tiny-bart" else None
    with torch.no_grad():
        prefix = pt.prefix()
        got = greedy_generate(
            b.model, enc["input_ids"], enc["attention_mask"], prefix=prefix, max_new_tokens=8
        )
        want = reference_greedy(b.model, prefix, enc["input_ids"], enc["attention_mask"], 8, start)
        plain = greedy_generate(b.model, enc["input_ids"], enc["attention_mask"], max_new_tokens=8)
    assert torch.equal(got, want)
    assert len(set(got.flatten().tolist())) > 1
    assert not torch.equal(got, plain)  # the prefix is there from the first step


@pytest.mark.parametrize("reparameterize", [False, True])
def test_word_initialisation_equals_reading_the_words_first(reparameterize):
    """With a prefix made of the activations of real words, a decoder sees exactly words + text
    (through the MLP too: its last layer is solved so that it outputs those activations)."""
    for name in ("tiny-llama", "tiny-gpt2"):
        b = load_backbone(name)
        words = "the film was"
        p = len(b.tokenizer(words, add_special_tokens=False)["input_ids"])
        pt = PrefixTuning(
            b,
            config=PrefixTuningConfig(
                num_virtual_tokens=p,
                init=PrefixInit.WORDS,
                init_text=words,
                reparameterize=reparameterize,
                reparam_hidden=32,
            ),
        )
        text = torch.tensor(b.tokenizer(" very good", add_special_tokens=False)["input_ids"])[None]
        word_ids = torch.tensor(b.tokenizer(words, add_special_tokens=False)["input_ids"])[None]
        both = torch.cat([word_ids, text], 1)
        with torch.no_grad():
            got = prefixed_forward(b.model, pt.prefix(), text).logits
            want = b.model(input_ids=both).logits[:, p:]
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_reparameterised_prefix_is_fitted_to_the_words_then_collapses_unchanged():
    b = load_backbone("tiny-llama")
    config = PrefixTuningConfig(num_virtual_tokens=4, reparam_hidden=32, init_text="the film was")
    pt = PrefixTuning(b, config=config)
    assert pt.init_error < 1e-8
    assert pt.trainable_parameters() > pt.prefix_parameters()  # the MLP is bigger than its output
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = prefixed_forward(b.model, pt.prefix(), ids).logits
        pt.collapse()
        after = prefixed_forward(b.model, pt.prefix(), ids).logits
    torch.testing.assert_close(before, after)
    assert pt.trainable_parameters() == pt.prefix_parameters() == 4 * 2 * (2 * 2 * 8)


def test_save_and_load_the_collapsed_prefix(tmp_path):
    b = load_backbone("tiny-gpt2")
    pt = PrefixTuning(
        b, config=PrefixTuningConfig(num_virtual_tokens=3, reparam_hidden=16, init=PrefixInit.RANDOM)
    )
    pt.collapse()
    save_prompt(pt, tmp_path / "ckpt")
    other = load_prompt(tmp_path / "ckpt", load_backbone("tiny-gpt2"))
    assert not other.prompts.reparameterized
    torch.testing.assert_close(other.prompts.full_table(), pt.prompts.full_table())
    with pytest.raises(CheckpointError, match="trained on backbone 'tiny-gpt2'"):
        load_prompt(tmp_path / "ckpt", load_backbone("tiny-llama"))


def test_training_moves_only_the_prefix_and_lowers_the_loss():
    b = load_backbone("tiny-gpt2")
    pt = PrefixTuning(b, config=PrefixTuningConfig(num_virtual_tokens=2, reparam_hidden=16, init_text="news"))
    frozen = {k: v.clone() for k, v in b.model.state_dict().items()}
    opt = torch.optim.Adam([p for p in pt.parameters() if p.requires_grad], lr=1e-2)
    src, tgt = ["the team won the game", "the market fell"], [" sport", " business"]
    first = pt.lm_loss(src, tgt).item()
    for _ in range(20):
        loss = pt.lm_loss(src, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in frozen.items())


def test_lm_loss_scores_only_the_target_tokens():
    b = load_backbone("tiny-llama")
    batch = encode_pairs(b.tokenizer, ["the film", "a very dull plot"], [" great", " bad"], seq2seq=False)
    n_target = sum(len(b.tokenizer(t)["input_ids"]) for t in (" great", " bad"))
    assert (batch["labels"] != -100).sum() == n_target
    with torch.no_grad():
        logits = b.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=(batch["attention_mask"].cumsum(-1) - 1).clamp(min=0),
        ).logits
        want = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            batch["labels"][:, 1:].reshape(-1),
            ignore_index=-100,
        )
        got = lm_loss(b.model, batch)
    torch.testing.assert_close(got, want)


def test_classification_with_a_template_on_causal_and_masked_lms():
    verbalizer = Verbalizer({"negative": "bad", "positive": "great"})
    for name, template in (("tiny-gpt2", "{text} It was {mask}"), ("tiny-bert", "{text} It was {mask}.")):
        config = PrefixTuningConfig(num_virtual_tokens=2, max_length=32, **RANDOM)
        pt = PrefixTuning(load_backbone(name), template, verbalizer, config)
        assert pt(["a fine film", "a very dull plot"]).shape == (2, 2)


def test_soft_prompt_generation_baseline_with_a_cache():
    b = load_backbone("tiny-llama")
    m = PromptTuning(b, config=PromptTuningConfig(num_virtual_tokens=3, init_text="news"))
    enc = encode_pairs(b.tokenizer, ["the film was great", "a dull plot"], None, seq2seq=False)
    got = greedy_generate(
        b.model, enc["input_ids"], enc["attention_mask"], soft_prompt=m.prompt, max_new_tokens=6
    )
    ids, mask = enc["input_ids"], enc["attention_mask"]
    for step in range(6):  # reference: embed everything again at every step
        embeds = torch.cat([m.prompt.expand(2, -1, -1), b.model.get_input_embeddings()(ids)], 1)
        full = torch.cat([torch.ones(2, 3, dtype=mask.dtype), mask], 1)
        with torch.no_grad():
            logits = prefixed_forward(b.model, None, inputs_embeds=embeds, attention_mask=full).logits
            nxt = logits[:, -1].argmax(-1)
        assert torch.equal(nxt, got[:, step])
        ids, mask = torch.cat([ids, nxt[:, None]], 1), torch.cat([mask, torch.ones_like(nxt)[:, None]], 1)
    assert m.trainable_parameters() == 3 * 32
    assert m.lm_loss(["the film"], [" great"]).requires_grad


def test_truncate_tokens_keeps_the_first_tokens():
    tok = load_backbone("tiny-gpt2").tokenizer
    text = "the film was great and the music was fun"
    assert truncate_tokens(tok, text, 100) == text
    short = truncate_tokens(tok, text, 3)
    assert len(tok(short)["input_ids"]) == 3 and text.startswith(short)


def test_rouge_of_identical_and_disjoint_text():
    assert rouge(["Stocks fall in Tokyo"], ["Stocks fall in Tokyo"])["rougeL"] == pytest.approx(1.0)
    assert rouge(["cats"], ["Stocks fall"])["rouge1"] == 0.0
    items = rouge(["Stocks fall in Tokyo", "cats"], ["Stocks fall in Tokyo", "Stocks fall"], per_item=True)
    assert items["rougeL"].tolist() == pytest.approx([1.0, 0.0])  # per article, for paired tests
    assert rouge(["Stocks fall in Tokyo", "cats"], ["Stocks fall in Tokyo", "Stocks fall"])[
        "rougeL"
    ] == pytest.approx(items["rougeL"].mean())


def test_bad_configurations_are_refused():
    with pytest.raises(PrefixError, match="no LM head"):
        PrefixTuning(_encoder_backbone())
    with pytest.raises(PrefixError, match="both a template and a verbalizer"):
        PrefixTuning(load_backbone("tiny-gpt2"), template="{text} It was {mask}")
    gen = PrefixTuning(load_backbone("tiny-gpt2"), config=PrefixTuningConfig(num_virtual_tokens=2, **RANDOM))
    with pytest.raises(PrefixError, match="built for generation"):
        gen(["a film"])
    masked = PrefixTuning(
        load_backbone("tiny-bert"), config=PrefixTuningConfig(num_virtual_tokens=2, **RANDOM)
    )
    with pytest.raises(PrefixError, match="needs a causal LM or an encoder-decoder"):
        masked.generate(["a film"])
    with pytest.raises(ValueError, match="positions"):  # 100 + 64 > 128 positions, before any compute
        PrefixTuning(
            load_backbone("tiny-gpt2"),
            "{text} It was {mask}",
            Verbalizer({"no": "bad", "yes": "great"}),
            PrefixTuningConfig(num_virtual_tokens=100, max_length=64, **RANDOM),
        )
    with pytest.raises(ValueError, match="positions"):
        gen.generate(["a film"], max_new_tokens=200)
    with pytest.raises(PrefixError, match="init_text has no tokens"):
        PrefixTuning(
            load_backbone("tiny-gpt2"), config=PrefixTuningConfig(num_virtual_tokens=2, init_text="")
        )
    with pytest.raises(ValueError, match="non-negative"):
        PrefixTuning(load_backbone("tiny-gpt2"), config=PrefixTuningConfig(num_virtual_tokens=-1))
    with pytest.raises(ValueError, match="one target per source"):
        encode_pairs(load_backbone("tiny-gpt2").tokenizer, ["a", "b"], ["x"], seq2seq=False)


def _encoder_backbone():
    """tiny-bert's encoder without its MLM head, as load_backbone gives MiniLM."""
    from prompt_learning.backbones import Backbone

    b = load_backbone("tiny-bert")
    return Backbone("tiny-bert-encoder", "encoder", b.model.bert, b.tokenizer)


@pytest.mark.parametrize("reparameterize", [False, True])
def test_a_random_prefix_follows_its_seed_not_the_global_random_state(reparameterize):
    def table(seed, noise):
        torch.manual_seed(noise)
        config = PrefixTuningConfig(
            num_virtual_tokens=3,
            init=PrefixInit.RANDOM,
            reparameterize=reparameterize,
            reparam_hidden=16,
            seed=seed,
        )
        return PrefixTuning(load_backbone("tiny-llama"), config=config).prompts.full_table().detach()

    assert torch.equal(table(0, noise=1), table(0, noise=2))
    assert not torch.equal(table(0, noise=1), table(1, noise=1))
