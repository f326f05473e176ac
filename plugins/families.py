"""A family of plugins made by a function of the argument: how the built-in ``imagefolder:PATH``,
``file:PATH`` and ``hf:<model id>`` are declared (a :class:`~textclf.plugin_api.Family`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class ArgumentFamily:
    """``<name>:<argument>``: ``make(argument)`` is the plugin for one argument."""

    name: str
    summary: str
    make: Callable[[str], Any]
    modality: Optional[str] = None  # what a backbone family binds (the lists of choices name it)

    def bind(self, argument: str) -> Any:
        """The plugin for ``argument``."""
        return self.make(argument)
