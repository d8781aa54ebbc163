"""One base class for every error the library raises about what it was given.

``except PromptLearningError`` catches them all; each module's own error (``TemplateError``,
``VerbalizerError``, ``BackboneError``, …) also keeps the built-in class it always had (mostly
``ValueError``), so code that caught that goes on working. Every message names the fix.
"""


class PromptLearningError(Exception):
    """Base of the library's errors: input, settings or files it cannot use; the message names the fix."""


class InputError(PromptLearningError, ValueError):
    """Inputs, data or settings the library cannot take; the message names the fix."""
