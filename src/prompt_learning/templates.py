"""Templates (PET's *patterns*): a sentence with a slot for the input and a slot for the answer.

``Template("{text} It was {mask}.")`` turns "I like the Disney films very much." into the cloze
"I like the Disney films very much. It was ___." (Schick & Schütze 2021). Two-text tasks use
``{text_a}`` and ``{text_b}``. A template is validated when it is made, before any compute.

Encoding is done piece by piece, as in PET and LM-BFF: each literal piece and each input is
tokenised on its own and the ids are joined, so the input (never the template) is what gets
truncated and the answer slot always survives. A space before a slot moves into the slot, so
BPE tokenisers see " great" (``Ġgreat``) exactly as they would in running text.

A template may also mark *virtual tokens* ``[P0]``, ``[P1]``, … among its words, as P-tuning's do
(Liu et al. 2021): ``"[P0][P1] {text} [P2] It was {mask}."``. The words around them are *anchors*.
Encoding puts a placeholder id where each virtual token goes and says which one stands there
(``virtual_index``); the method that owns the template supplies their vectors.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass

import torch

from .errors import PromptLearningError

TEXT_SLOTS = ("text", "text_a", "text_b")
VIRTUAL = re.compile(r"\[P(\d+)\]")  # a virtual-token marker: "[P0]", "[P1]", … (P-tuning's templates)


def virtual_tokens(n: int, start: int = 0) -> str:
    """``"[P0][P1]…"``: ``n`` virtual-token markers (numbered from ``start``) for a template."""
    return "".join(f"[P{i}]" for i in range(start, start + n))


class TemplateError(PromptLearningError, ValueError):
    """A template that cannot work; the message names the fix."""


@dataclass(frozen=True)
class Piece:
    kind: str  # "literal", "text", "text_a", "text_b" or "mask"
    value: str = ""  # the literal's characters
    space_before: bool = False  # a slot preceded by a space (the space moves into the slot)


class Template:
    """A parsed, validated cloze template."""

    def __init__(self, pattern: str):
        if not isinstance(pattern, str):
            raise TemplateError(
                f"a template is a string such as '{{text}} It was {{mask}}.', got {pattern!r}"
            )
        self.pattern = pattern
        markers = [int(m) for m in VIRTUAL.findall(pattern)]
        if sorted(markers) != list(range(len(markers))):
            raise TemplateError(
                f"template {pattern!r} has virtual tokens {markers}: number them "
                f"[P0] to [P{len(markers) - 1}], each once"
            )
        self.num_virtual_tokens = len(markers)
        converted = VIRTUAL.sub(lambda m: "{P" + m.group(1) + "}", pattern)  # markers → format fields
        try:  # str.format's own parser: "{{" and "}}" are literal braces
            parsed = list(string.Formatter().parse(converted))
        except ValueError as e:
            raise TemplateError(
                f"template {pattern!r} is malformed ({e}); write literal braces as {{{{ and }}}}"
            ) from e
        names = [f for _, f, _, _ in parsed if f is not None and not _is_virtual(f)]
        decorated = [
            f"{{{f}{'!' + c if c else ''}{':' + s if s else ''}}}"
            for _, f, s, c in parsed
            if f is not None and (s or c)
        ]
        if decorated:
            raise TemplateError(
                f"template {pattern!r} has slot(s) with a format spec or conversion "
                f"{decorated}; write plain {{text}} and {{mask}}"
            )
        unknown = [n for n in names if n not in (*TEXT_SLOTS, "mask")]  # (virtual markers are not slots)
        if unknown:
            raise TemplateError(
                f"template {pattern!r} has unknown slot(s) {unknown}; "
                f"use {{text}} (or {{text_a}} and {{text_b}}) and {{mask}}"
            )
        if names.count("mask") != 1:
            raise TemplateError(
                f"template {pattern!r} needs exactly one {{mask}} slot, found "
                f"{names.count('mask')}: the mask is where the label word goes"
            )
        if not any(n in names for n in ("text", "text_a")):
            raise TemplateError(
                f"template {pattern!r} has no input slot: add {{text}} "
                "(or {text_a} / {text_b} for two-text tasks)"
            )
        repeated = sorted({n for n in names if n != "mask" and names.count(n) > 1})
        if repeated:
            raise TemplateError(
                f"template {pattern!r} uses slot(s) {repeated} more than once; "
                "each input goes into the template exactly once"
            )
        if "text" in names and ("text_a" in names or "text_b" in names):
            raise TemplateError(
                f"template {pattern!r} mixes {{text}} with {{text_a}}/{{text_b}}; use one style"
            )
        if "text_b" in names and "text_a" not in names:
            raise TemplateError(f"template {pattern!r} has {{text_b}} without {{text_a}}")
        self.pieces = self._parse(parsed)
        self.text_slots = tuple(n for n in names if n != "mask")
        kinds = [p.kind for p in self.pieces]
        self.mask_space = self.pieces[kinds.index("mask")].space_before
        self.after_mask = [k for k in kinds[kinds.index("mask") + 1 :] if _is_virtual(k)]

    @property
    def anchors(self) -> list[str]:
        """The hard words of the template (everything but slots and virtual tokens)."""
        return [p.value.strip() for p in self.pieces if p.kind == "literal" and p.value.strip()]

    @property
    def hard(self) -> Template:
        """The template without its virtual tokens."""
        return Template(VIRTUAL.sub("", self.pattern)) if self.num_virtual_tokens else self

    @staticmethod
    def _parse(parsed: list[tuple]) -> list[Piece]:
        pieces: list[Piece] = []
        for literal, field, _, _ in parsed:
            space = literal.endswith(" ") and field is not None
            if literal.rstrip(" ") if space else literal:
                pieces.append(Piece("literal", literal.rstrip(" ") if space else literal))
            if field is not None:
                pieces.append(Piece(field, space_before=space))
        return pieces

    @property
    def mask_at_end(self) -> bool:
        """True when only punctuation/space follows the mask: a causal LM can fill it."""
        kinds = [p.kind for p in self.pieces]
        tail = "".join(p.value for p in self.pieces[kinds.index("mask") + 1 :] if p.kind == "literal")
        return len([p for p in self.pieces[kinds.index("mask") + 1 :] if p.kind != "literal"]) == 0 and all(
            c.isspace() or unicodedata.category(c).startswith("P") for c in tail
        )  # 。 ！ count too

    def check_causal(self) -> None:
        """Raise unless a causal LM can use this template (the answer slot at the end)."""
        if self.after_mask:
            late = [f"[{k}]" for k in self.after_mask]
            raise TemplateError(
                f"{self!r}: virtual token(s) {late} come after {{mask}}; a causal LM reads "
                "left to right, so they cannot affect the answer. Move them before {mask}."
            )
        if not self.mask_at_end:
            raise TemplateError(
                f"{self!r}: a causal LM predicts left to right, so it can only fill a {{mask}} at the "
                "end (punctuation may follow). Move {mask} to the end, or use a masked LM."
            )

    def fill(self, answer: str, **texts: str) -> str:
        """The template as plain text, with ``answer`` in the mask slot (a demonstration)."""
        if self.num_virtual_tokens:
            raise TemplateError(
                f"{self!r} has virtual tokens, which have no text; fill its hard part (template.hard) instead"
            )
        return self.pattern.format(mask=answer, **texts)

    def __repr__(self) -> str:
        return f"Template({self.pattern!r})"

    def encode(
        self,
        tokenizer,
        texts: dict[str, list[str]],
        max_length: int,
        *,
        causal: bool,
        placeholder: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Token ids for a batch, padded, with the position of the mask slot.

        ``causal=True`` stops right before the mask (the next-token prediction there is the
        answer), pads on the left, so ``mask_pos`` is the last index; otherwise the tokenizer's mask
        token stands in the slot, padding is on the right, and ``mask_pos`` holds its index.
        Virtual tokens hold ``placeholder`` (default: the pad id) and their number in
        ``virtual_index`` (-1 at real tokens); they count toward ``max_length`` here (a method
        passes its ``max_length`` plus its virtual tokens), and only the inputs are ever truncated.
        Returns ``input_ids``, ``attention_mask``, ``virtual_index`` ``(B, T)`` and ``mask_pos`` ``(B,)``.
        """
        if causal:
            self.check_causal()
        rows = self.rows(tokenizer, texts, max_length, causal=causal, placeholder=placeholder)
        out = pad_rows([(ids, pos) for ids, _, pos in rows], tokenizer.pad_token_id or 0, left=causal)
        virtual = pad_rows([(v, pos) for _, v, pos in rows], -1, left=causal)["input_ids"]  # (B, T)
        return {**out, "virtual_index": virtual}

    def rows(
        self,
        tokenizer,
        texts: dict[str, list[str]],
        max_length: int,
        *,
        causal: bool,
        placeholder: int | None = None,
    ) -> list[tuple[list[int], list[int], int]]:
        """Unpadded ``(token ids, virtual index, mask position)`` for each example."""
        missing = [s for s in self.text_slots if s not in texts]
        if missing:
            raise TemplateError(f"{self!r} needs input column(s) {missing}")
        n = len(texts[self.text_slots[0]])
        fill = tokenizer.pad_token_id or 0 if placeholder is None else placeholder
        return [
            self._ids(tokenizer, {s: texts[s][i] for s in self.text_slots}, max_length, causal, fill)
            for i in range(n)
        ]

    def _ids(
        self, tok, texts: dict[str, str], max_length: int, causal: bool, placeholder: int
    ) -> tuple[list[int], list[int], int]:
        enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        parts: list[list[int]] = []
        virtual: list[list[int]] = []  # per part: the virtual token's number at each id, or -1
        slots: list[int] = []  # indices into parts of the text slots (truncatable)
        mask_part = 0
        for p in self.pieces:
            if p.kind == "mask":
                if causal:
                    break
                mask_part = len(parts)  # its index: an input may itself contain the mask token
                parts.append([tok.mask_token_id])
            elif _is_virtual(p.kind):
                parts.append([placeholder])
                virtual.append([int(p.kind[1:])])
                continue
            elif p.kind == "literal":
                parts.append(enc(p.value))
            else:
                slots.append(len(parts))
                parts.append(enc((" " if p.space_before else "") + texts[p.kind].strip()))
            virtual.append([-1] * len(parts[-1]))
        head, tail = special_tokens_around(tok)
        tail = [] if causal else tail  # an EOS after the text would hide the next-token slot
        specials = len(head) + len(tail)
        budget = max_length - specials - sum(len(parts[i]) for i in range(len(parts)) if i not in slots)
        if budget < len(slots):
            raise TemplateError(
                f"max_length={max_length} leaves no room for the input after the "
                f"template {self.pattern!r}; raise max_length"
            )
        while sum(len(parts[i]) for i in slots) > budget:  # trim the longest input first
            longest = max(slots, key=lambda i: len(parts[i]))
            parts[longest] = parts[longest][:-1]
            virtual[longest] = virtual[longest][:-1]
        ids = head + [t for part in parts for t in part] + tail
        vidx = [-1] * len(head) + [v for part in virtual for v in part] + [-1] * len(tail)
        pos = len(ids) - 1 if causal else len(head) + sum(len(part) for part in parts[:mask_part])
        return ids, vidx, pos


def _is_virtual(kind: str) -> bool:
    return re.fullmatch(r"P\d+", kind) is not None


def special_tokens_around(tok) -> tuple[list[int], list[int]]:
    """The special ids a tokenizer puts before and after a text ([CLS] … [SEP], <s> …, or none)."""
    plain = tok("a", add_special_tokens=False)["input_ids"]
    full = tok("a")["input_ids"]
    start = next(i for i in range(len(full)) if full[i : i + len(plain)] == plain)
    return full[:start], full[start + len(plain) :]


def pad_rows(rows: list[tuple[list[int], int]], pad_id: int, left: bool) -> dict[str, torch.Tensor]:
    """Rows of ``(token ids, slot index)`` → ``input_ids``, ``attention_mask`` ``(B, T)`` and the slot's
    column ``mask_pos`` ``(B,)``, padded with ``pad_id`` on the left (causal LMs) or the right."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    mask_pos = torch.empty(len(rows), dtype=torch.long)
    for i, (ids, pos) in enumerate(rows):
        start = width - len(ids) if left else 0
        input_ids[i, start : start + len(ids)] = torch.tensor(ids)
        mask[i, start : start + len(ids)] = 1
        mask_pos[i] = start + pos
    return {"input_ids": input_ids, "attention_mask": mask, "mask_pos": mask_pos}


def pad_ids(rows: list[list[int]], pad_id: int, left: bool) -> dict[str, torch.Tensor]:
    """Rows of token ids → ``input_ids`` and ``attention_mask`` ``(B, T)`` (:func:`pad_rows`, no slot)."""
    batch = pad_rows([(list(r), 0) for r in rows], pad_id, left)
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
