"""Templates: parsed and validated when made; encoded piece by piece with the slot always kept."""

import pytest

from prompt_learning import Template, TemplateError, load_backbone


@pytest.mark.parametrize(
    "pattern, fragment",
    [
        ("{text} It was great.", "exactly one {mask}"),
        ("{text} It was {mask}, really {mask}.", "exactly one {mask}"),
        ("It was {mask}.", "no input slot"),
        ("{text_b} It was {mask}.", "no input slot"),
        ("{text} and {text_b}: {mask}", "mixes {text}"),
        ("{text} {label}: {mask}", "unknown slot(s) ['label']"),
        ("{} It was {mask}.", "unknown slot(s) ['']"),
        ("{text} It was {mask", "malformed"),
        ("{text} It was {mask}. {text}", "more than once"),
        ("{text:>20} It was {mask}.", "format spec"),
        ("{text!r} It was {mask}.", "format spec or conversion"),
    ],
)
def test_bad_templates_are_refused_with_the_fix(pattern, fragment):
    with pytest.raises(TemplateError) as err:
        Template(pattern)
    assert fragment in str(err.value)


def test_text_b_alone_needs_text_a():
    # a template with text_a absent but text_b present cannot say where the first input goes
    with pytest.raises(TemplateError, match="no input slot|without {text_a}"):
        Template("{text_b}? {mask}.")


def test_two_text_template_is_accepted_and_encodes_both_inputs():
    t = Template("{text_a} ? {mask} , {text_b}")
    assert t.text_slots == ("text_a", "text_b")
    tok = load_backbone("tiny-bert").tokenizer
    batch = t.encode(tok, {"text_a": ["the film was fun"], "text_b": ["the plot was good"]}, 64, causal=False)
    words = tok.convert_ids_to_tokens(batch["input_ids"][0])
    assert words == [
        "[CLS]",
        "the",
        "film",
        "was",
        "fun",
        "?",
        "[MASK]",
        ",",
        "the",
        "plot",
        "was",
        "good",
        "[SEP]",
    ]
    assert words[batch["mask_pos"][0]] == "[MASK]"


def test_two_text_template_names_a_missing_column():
    t = Template("{text_a} ? {mask} , {text_b}")
    with pytest.raises(TemplateError, match=r"needs input column\(s\) \['text_b'\]"):
        t.encode(load_backbone("tiny-bert").tokenizer, {"text_a": ["x"]}, 32, causal=False)


def test_literal_braces_are_allowed():
    t = Template("{{note}} {text} It was {mask}.")
    assert t.fill("great", text="fun") == "{note} fun It was great."


def test_mask_at_end_allows_trailing_punctuation_only():
    assert Template("{text} It was {mask}.").mask_at_end
    assert Template("Review: {text}\nSentiment: {mask}").mask_at_end
    assert not Template("It was {mask}: {text}").mask_at_end
    assert not Template("{text} It was {mask} fun.").mask_at_end


def test_causal_encoding_refuses_a_mid_sentence_mask():
    tok = load_backbone("tiny-gpt2").tokenizer
    with pytest.raises(TemplateError, match="only fill a {mask} at the end"):
        Template("It was {mask}: {text}").encode(tok, {"text": ["fun"]}, 32, causal=True)


def test_space_before_the_mask_moves_into_the_slot_for_bpe():
    """RoBERTa's <mask> swallows the space before it, as the pretrained model saw it."""
    tok = load_backbone("tiny-roberta").tokenizer
    batch = Template("{text} It was {mask}.").encode(tok, {"text": ["a fine film"]}, 64, causal=False)
    ids = batch["input_ids"][0].tolist()
    assert ids == tok("a fine film It was <mask>.")["input_ids"]
    assert ids[batch["mask_pos"][0]] == tok.mask_token_id


def test_causal_encoding_stops_before_the_slot_and_pads_left():
    tok = load_backbone("tiny-gpt2").tokenizer
    texts = {"text": ["fun", "a very boring film"]}
    batch = Template("{text} it was {mask}.").encode(tok, texts, 64, causal=True)
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][:, -1].tolist() == [1, 1]
    assert batch["mask_pos"].tolist() == [batch["input_ids"].shape[1] - 1] * 2
    last = tok.convert_ids_to_tokens(batch["input_ids"][1])[-2:]
    assert last == ["Ġit", "Ġwas"]


def test_truncation_cuts_the_input_never_the_slot():
    tok = load_backbone("tiny-bert").tokenizer
    long = " ".join(["the film"] * 50)
    batch = Template("{text} It was {mask}.").encode(tok, {"text": [long]}, 16, causal=False)
    ids = batch["input_ids"][0]
    assert len(ids) == 16
    assert ids[batch["mask_pos"][0]] == tok.mask_token_id
    assert tok.convert_ids_to_tokens(ids[-4:]) == ["was", "[MASK]", ".", "[SEP]"]


def test_max_length_without_room_for_the_input_is_refused():
    tok = load_backbone("tiny-bert").tokenizer
    with pytest.raises(TemplateError, match="raise max_length"):
        Template("{text} It was really a very {mask} film.").encode(tok, {"text": ["fun"]}, 6, causal=False)


def test_an_input_that_contains_the_mask_token_does_not_move_the_slot():
    """Content-free calibration feeds the literal "[MASK]" as an input; the slot stays the template's."""
    tok = load_backbone("tiny-bert").tokenizer
    batch = Template("{text} It was {mask}.").encode(tok, {"text": ["[MASK]"]}, 32, causal=False)
    words = tok.convert_ids_to_tokens(batch["input_ids"][0])
    assert words == ["[CLS]", "[MASK]", "it", "was", "[MASK]", ".", "[SEP]"]
    assert batch["mask_pos"][0] == 4


def test_unicode_punctuation_after_the_mask_still_counts_as_the_end():
    assert Template("{text}这部电影很{mask}。").mask_at_end
    assert not Template("{text}这部电影很{mask}好").mask_at_end
