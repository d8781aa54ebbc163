"""On/off switches read from the environment, one rule for all of them.

The library's switches (each documented where it acts):

* ``PROMPT_LEARNING_CPU_BF16`` (:mod:`~prompt_learning.precision`, default on): bf16 autocast on a
  CPU with AMX-BF16 or AVX512-BF16;
* ``PROMPT_LEARNING_CPU_MALLOC`` (:mod:`~prompt_learning.allocator`, default on): freed memory kept
  for reuse on a CPU;
* ``PROMPT_LEARNING_OFFLINE_STANDINS`` (:mod:`~prompt_learning.profiles`, default off): the hub
  profiles with embedded backbones in place of the hub's.

Each reads ``1``, ``true``, ``yes``, ``on`` as on and ``0``, ``false``, ``no``, ``off`` as off (any
case, spaces ignored); unset or empty is the default. Any other value is refused with an error
that names the variable and the values it takes, rather than read silently as one or the other.
"""

from __future__ import annotations

import os

from .errors import PromptLearningError

ON = ("1", "true", "yes", "on")
OFF = ("0", "false", "no", "off")


class SwitchError(PromptLearningError, ValueError):
    """An environment switch set to a value that is neither on nor off."""


def switch(name: str, default: bool) -> bool:
    """The on/off value of the environment variable ``name``; ``default`` when unset or empty."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ON:
        return True
    if value in OFF:
        return False
    raise SwitchError(
        f"{name}={os.environ[name]!r} is neither on nor off: set it to one of "
        f"{', '.join(ON)} (on) or {', '.join(OFF)} (off), or unset it for the default "
        f"({'on' if default else 'off'})"
    )
