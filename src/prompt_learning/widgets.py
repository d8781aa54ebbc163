"""A prompt playground: edit a template and its label words, watch the label-word probabilities move.

``prompt_playground(backbone, sentences)`` shows ipywidgets text boxes for the template and for
each class's label words, and a bar chart and table of the classes' probabilities (softmax over
the label words in the answer slot, Schick & Schütze 2021) for a few sentences. A bad template or
a multi-token label word shows its error message instead — the validation is part of the lesson.

The widget needs a live kernel; a reader of the static website cannot load the widget's
JavaScript. So the playground is built with its initial values (its output area is filled when
the notebook executes) and the same initial result is also shown as a plain figure and table.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import HTML, Image, display

from .backbones import Backbone
from .cloze import ClozeClassifier
from .errors import InputError
from .method import PromptLearningConfig
from .templates import TemplateError
from .verbalizers import Verbalizer, VerbalizerError

DEFAULT_WORDS = {"negative": "terrible", "positive": "great"}


def parse_words(text: str) -> list[str]:
    """``"great, good"`` → ``["great", "good"]`` (a class may have several label words)."""
    return [w.strip() for w in text.split(",") if w.strip()]


@torch.no_grad()
def label_word_probabilities(
    backbone: Backbone,
    template: str,
    words: Mapping[str, str | Sequence[str]],
    sentences: Sequence[str],
    max_length: int = 64,
) -> pd.DataFrame:
    """Class probabilities ``(len(sentences), C)``: softmax over the classes' label-word scores.

    Raises :class:`~prompt_learning.templates.TemplateError` / :class:`~prompt_learning.verbalizers.VerbalizerError` (with the fix) for bad input.
    """
    words = {label: parse_words(w) if isinstance(w, str) else list(w) for label, w in words.items()}
    clf = ClozeClassifier(backbone, template, Verbalizer(words), PromptLearningConfig(max_length=max_length))
    probs = clf(list(sentences)).softmax(-1).float().cpu()  # (N, C)
    return pd.DataFrame(probs.numpy(), index=list(sentences), columns=list(words))


def probability_figure(table: pd.DataFrame, title: str = "") -> matplotlib.figure.Figure:
    """Stacked horizontal bars: one bar per sentence, one colour per class."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(table) + 1.2))
    left = [0.0] * len(table)
    short = [s if len(s) <= 48 else s[:45] + "…" for s in table.index]
    for label in table.columns:
        ax.barh(short, table[label], left=left, label=label)
        left = [a + b for a, b in zip(left, table[label])]
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of the class (softmax over label words)")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _png(fig: matplotlib.figure.Figure) -> Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return Image(data=buf.getvalue(), format="png")


def _html(table: pd.DataFrame) -> HTML:
    return HTML(table.style.format("{:.2f}").to_html())


class PromptPlayground:
    """The widgets and their state; :func:`prompt_playground` builds and shows one."""

    def __init__(
        self,
        backbone: Backbone,
        sentences: Sequence[str],
        template: str = "{text} It was {mask}.",
        words: Mapping[str, str | Sequence[str]] | None = None,
        max_length: int = 64,
    ):
        words = dict(words or DEFAULT_WORDS)
        self.backbone, self.sentences, self.max_length = backbone, list(sentences), max_length
        if not self.sentences:
            raise InputError("the playground needs at least one sentence")
        style = {"description_width": "90px"}
        layout = widgets.Layout(width="95%")
        self.template_box = widgets.Text(
            value=template, description="template", continuous_update=False, style=style, layout=layout
        )
        self.word_boxes = {
            label: widgets.Text(
                value=w if isinstance(w, str) else ", ".join(w),
                description=label,
                continuous_update=False,
                style=style,
            )
            for label, w in words.items()
        }
        self.output = widgets.Output()
        for box in (self.template_box, *self.word_boxes.values()):
            box.observe(self.update, names="value")
        words_row = widgets.HBox(list(self.word_boxes.values()))
        self.widget = widgets.VBox([self.template_box, words_row, self.output])
        self.table: pd.DataFrame | None = None
        self.error: str | None = None
        self.update()

    @property
    def title(self) -> str:
        words = " / ".join(f"{label}: {box.value}" for label, box in self.word_boxes.items())
        return f"{self.template_box.value!r}   ({words})"

    def update(self, change=None) -> None:
        """Recompute for the current boxes and redraw the output area."""
        self.output.outputs = ()
        try:
            self.table = label_word_probabilities(
                self.backbone,
                self.template_box.value,
                {k: b.value for k, b in self.word_boxes.items()},
                self.sentences,
                self.max_length,
            )
            self.error = None
        except (TemplateError, VerbalizerError) as e:
            self.table, self.error = None, str(e)
            self.output.append_display_data(HTML(f"<pre style='color:#b00'>⚠ {e}</pre>"))
            return
        self.output.append_display_data(_png(probability_figure(self.table, self.title)))
        self.output.append_display_data(_html(self.table))

    def static(self) -> tuple[Image, HTML]:
        """The current result as a plain image and table, for readers without a live kernel."""
        if self.table is None:
            return HTML(f"<pre>⚠ {self.error}</pre>"), HTML("")
        return _png(probability_figure(self.table, self.title)), _html(self.table)


def prompt_playground(
    backbone: Backbone,
    sentences: Sequence[str],
    template: str = "{text} It was {mask}.",
    words: Mapping[str, str | Sequence[str]] | None = None,
    max_length: int = 64,
    static: bool = True,
) -> PromptPlayground:
    """Show the playground; with ``static=True`` also its initial result as a plain figure and table."""
    playground = PromptPlayground(backbone, sentences, template, words, max_length)
    display(playground.widget)
    if static:
        display(
            HTML("<p><em>Static copy of the initial result (the boxes above need a live kernel):</em></p>")
        )
        for item in playground.static():
            display(item)
    return playground
