"""prompt_learning: the library behind the prompt-learning book.

One idea per module, named as in the book's chapters: ``templates`` and ``verbalizers`` (PET's
patterns and label words), ``cloze`` (classification with the LM head), ``pet``, ``auto_label_words``,
``autoprompt`` and ``multi_token`` (prompts found by search), ``in_context``
(demonstrations in the prompt), ``soft_prompts`` (prompt tuning), ``p_tuning``, ``kv_prefix``,
``prefix_tuning``, ``p_tuning_v2``, ``heads`` (the classifier-head baseline), ``lora`` (the
weight-update yardstick, via PEFT); ``method`` (the
contract every method keeps), ``checkpoints``, ``training`` (one train/evaluate loop),
``precision`` (devices and mixed precision), ``stats`` (intervals, paired tests, verdicts);
``backbones`` and ``data`` (offline pretrained models and corpora), ``profiles`` (run sizes).
"""

from .auto_label_words import LabelWordSearch, auto_label_words
from .autoprompt import AutoPrompt, AutoPromptConfig
from .backbones import Backbone, BackboneError, load_backbone
from .checkpoints import CheckpointError, load_prompt, save_prompt
from .cloze import ClozeClassifier
from .data import bbc_news, chinese_reviews, few_shot, movie_reviews, stratified_head
from .errors import PromptLearningError
from .heads import HeadClassifier, HeadConfig
from .in_context import InContextClassifier, in_context_classifier
from .lora import LoRACloze, LoRAConfig
from .method import InputError, PromptLearningConfig, PromptMethod, check_dataset
from .multi_token import MultiTokenCloze, continuation_logprob
from .p_tuning import PromptEncoderType, PTuning, PTuningConfig
from .p_tuning_v2 import PTuningV2, PTuningV2Config
from .pet import PET, PatternEnsemble, PETConfig, PETLoss
from .prefix_tuning import PrefixInit, PrefixTuning, PrefixTuningConfig
from .profiles import Profile, get_profile
from .soft_prompts import PromptTuning, PromptTuningConfig, PromptTuningInit, Readout
from .templates import Template, TemplateError, virtual_tokens
from .training import History, evaluate, fit, predict, set_seed
from .verbalizers import Verbalizer, VerbalizerError

__all__ = [
    "LabelWordSearch",
    "auto_label_words",
    "AutoPrompt",
    "AutoPromptConfig",
    "MultiTokenCloze",
    "continuation_logprob",
    "LoRACloze",
    "LoRAConfig",
    "Backbone",
    "BackboneError",
    "load_backbone",
    "CheckpointError",
    "load_prompt",
    "save_prompt",
    "ClozeClassifier",
    "bbc_news",
    "chinese_reviews",
    "few_shot",
    "movie_reviews",
    "stratified_head",
    "HeadClassifier",
    "HeadConfig",
    "InContextClassifier",
    "in_context_classifier",
    "InputError",
    "PromptLearningError",
    "PromptLearningConfig",
    "PromptMethod",
    "check_dataset",
    "PromptEncoderType",
    "PTuning",
    "PTuningConfig",
    "PTuningV2",
    "PTuningV2Config",
    "PET",
    "PETConfig",
    "PETLoss",
    "PatternEnsemble",
    "PrefixInit",
    "PrefixTuning",
    "PrefixTuningConfig",
    "Profile",
    "get_profile",
    "PromptTuning",
    "PromptTuningConfig",
    "PromptTuningInit",
    "Readout",
    "Template",
    "TemplateError",
    "virtual_tokens",
    "History",
    "evaluate",
    "fit",
    "predict",
    "set_seed",
    "Verbalizer",
    "VerbalizerError",
]
__version__ = "0.1.0"
