"""prompt_learning: the library behind the prompt-learning book.

One idea per module, named as in the book's chapters: ``templates`` and ``verbalizers`` (PET's
patterns and label words), ``cloze`` (classification with the LM head), ``in_context``
(demonstrations in the prompt), ``training`` (one train/evaluate loop), ``backbones`` and
``data`` (offline pretrained models and corpora), ``profiles`` (smoke / cpu / gpu sizes).
"""

from .backbones import Backbone, BackboneError, load_backbone
from .cloze import ClozeClassifier
from .data import bbc_news, chinese_reviews, few_shot, movie_reviews, stratified_head
from .profiles import Profile, get_profile
from .templates import Template, TemplateError
from .training import History, evaluate, fit, predict, set_seed
from .verbalizers import Verbalizer, VerbalizerError

__all__ = [
    "Backbone", "BackboneError", "load_backbone", "ClozeClassifier", "bbc_news", "chinese_reviews",
    "few_shot", "movie_reviews", "stratified_head", "Profile", "get_profile", "Template",
    "TemplateError", "History", "evaluate", "fit", "predict", "set_seed", "Verbalizer",
    "VerbalizerError",
]
__version__ = "0.1.0"
