"""Plugins written for the old contract, adapted to the bound one for one release (issue 30).

The old contract threaded the argument of ``name:ARG`` through every method: a plugin declared
``takes_argument`` and took the argument (``None`` when used by name) in ``spec(argument,
pretrained)``, ``create(argument, pretrained[, input_size])``, ``class_names(argument)``,
``load(argument)`` (called without one when ``takes_argument`` was false) and, for describers,
``make(argument=..., **options)``. The registry passes such a plugin through :func:`adapt`: one
used as ``name:ARG`` becomes a :class:`~textclf.plugin_api.Family` whose ``bind`` returns an
adapter with the new methods, one used by name becomes that adapter, and a
:class:`DeprecationWarning` names the plugin and what to change. Remove this module (and its call
in the registry) in the release after.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Optional

DEPRECATION = (
    "{kind} plugin '{name}' from '{package}' is written for the old plugin contract "
    "(takes_argument, methods that take the argument); it works until the next release. "
    "To update it: drop takes_argument and the argument parameter of its methods{family} "
    "(see textclf.plugin_api and docs/plugins.md)."
)
AS_FAMILY = ", and make it a Family whose bind(argument) returns the plugin for one argument"


def is_old_style(obj: Any) -> bool:
    """Whether ``obj`` follows the old contract (it declares ``takes_argument``)."""
    return hasattr(obj, "takes_argument")


def adapt(kind: str, name: str, package: str, obj: Any) -> Any:
    """``obj`` (an old-style plugin of registry ``kind``) as a new-style plugin or family, with a
    :class:`DeprecationWarning` naming it."""
    family = AS_FAMILY if obj.takes_argument and kind != "prompts" else ""
    message = DEPRECATION.format(kind=kind[:-1], name=name, package=package, family=family)
    warnings.warn(message, DeprecationWarning, stacklevel=3)
    if kind == "prompts":  # a prompt's methods never took the argument
        return obj
    if obj.takes_argument:
        return OldFamily(kind, obj)
    return bound(kind, obj, None)


def bound(kind: str, plugin: Any, argument: Optional[str]) -> Any:
    """The adapter that calls the old ``plugin`` with ``argument``."""
    if kind == "datasets":
        return OldDataset(plugin, argument)
    if kind == "describers":
        return OldDescriber(plugin, argument)
    modality = getattr(plugin, "modality", None)
    if modality == "paired":
        return OldPaired(plugin, argument)
    return OldText(plugin, argument) if modality == "text" else OldImage(plugin, argument)


@dataclass(frozen=True)
class _Adapter:
    """An old plugin with its argument; attributes it does not override come from the plugin."""

    plugin: Any
    argument: Optional[str]

    def __getattr__(self, attr: str) -> Any:
        # Only for the plugin's own attributes (name, summary, modality, dim, hooks, ...): dunder
        # lookups (copy, pickle) and the fields themselves must not recurse.
        if attr.startswith("__") or attr in ("plugin", "argument"):
            raise AttributeError(attr)
        return getattr(self.plugin, attr)


@dataclass(frozen=True)
class OldFamily:
    """An old ``takes_argument`` plugin as a family: ``bind`` pairs it with the argument."""

    kind: str
    plugin: Any

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in ("kind", "plugin"):
            raise AttributeError(attr)
        return getattr(self.plugin, attr)

    def bind(self, argument: str) -> Any:
        """The adapter for ``argument``."""
        return bound(self.kind, self.plugin, argument)


class OldDataset(_Adapter):
    """``class_names()`` and ``load()`` of an old dataset plugin."""

    def class_names(self) -> Optional[list[str]]:
        """The old ``class_names(argument)``."""
        return self.plugin.class_names(self.argument)

    def load(self) -> Any:
        """The old ``load(argument)``, or ``load()`` for a plugin used by name."""
        return self.plugin.load(self.argument) if self.plugin.takes_argument else self.plugin.load()


class OldImage(_Adapter):
    """``spec`` and ``create`` of an old image backbone (its hooks never took the argument)."""

    def spec(self, pretrained: bool = True) -> Any:
        """The old ``spec(argument, pretrained)``."""
        return self.plugin.spec(self.argument, pretrained)

    def create(self, pretrained: bool = True, input_size: Optional[int] = None) -> Any:
        """The old ``create(argument, pretrained[, input_size])`` (the size only when given, as
        before)."""
        if input_size is None:
            return self.plugin.create(self.argument, pretrained)
        return self.plugin.create(self.argument, pretrained, input_size)


class OldText(_Adapter):
    """``spec`` and ``create`` of an old text backbone."""

    def spec(self, pretrained: bool = True) -> Any:
        """The old ``spec(argument, pretrained)``."""
        return self.plugin.spec(self.argument, pretrained)

    def create(self, pretrained: bool = True) -> Any:
        """The old ``create(argument, pretrained)``."""
        return self.plugin.create(self.argument, pretrained)


class OldPaired(_Adapter):
    """An old paired backbone: both towers with the one argument."""

    @property
    def image(self) -> OldImage:
        """The image tower's adapter."""
        return OldImage(self.plugin.image, self.argument)

    @property
    def text(self) -> OldText:
        """The text tower's adapter."""
        return OldText(self.plugin.text, self.argument)


class OldDescriber(_Adapter):
    """``make(**options)`` of an old describer (the argument went in as an option)."""

    def make(self, **options) -> Any:
        """The old ``make(argument=..., **options)`` (no ``argument`` for a describer used by
        name, as before)."""
        if self.argument is not None:
            options["argument"] = self.argument
        return self.plugin.make(**options)
