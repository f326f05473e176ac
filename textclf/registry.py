"""Plugin registry over entry-point groups (the built-ins use the same groups as third parties).

A name maps to an entry point and is loaded on first use. Two distributions that register one
name make that name an error naming both; a plugin whose import fails is reported and skipped.
``name:ARG`` resolves through a :class:`~textclf.plugin_api.Family`: its ``bind(ARG)`` gives the
plugin (once per name), so callers only ever hold ordinary plugins. Old-style plugins are adapted
on load (:mod:`textclf.plugin_compat`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Optional

from textclf import plugin_compat
from textclf.errors import TextclfError, unknown_choice
from textclf.plugin_api import PROTOCOLS, Family

GROUPS = {
    "prompts": "textclf.prompts",
    "backbones": "textclf.backbones",
    "describers": "textclf.describers",
    "datasets": "textclf.datasets",
}


@dataclass
class PluginEntry:
    """One registered plugin: where it comes from and, once loaded, the object or the error."""

    name: str
    group: str
    value: str
    package: str
    obj: Any = None
    error: Optional[str] = None
    conflict: Optional[str] = None
    loaded: bool = False

    @property
    def status(self) -> str:
        """'ok', 'not loaded', or the error that makes this plugin unusable."""
        if self.conflict:
            return f"conflict: {self.conflict}"
        if self.error:
            return f"broken: {self.error}"
        return "ok" if self.loaded else "not loaded"


def contract_problem(kind: str, obj: Any) -> Optional[str]:
    """Why ``obj`` does not satisfy the plugin contract of ``kind`` (see
    :mod:`textclf.plugin_api`), or None. A :class:`Family` passes; what it binds is checked
    when it binds."""
    if isinstance(obj, Family):
        return None
    protocols = PROTOCOLS[kind]
    if any(isinstance(obj, p) for p in protocols):
        if kind == "backbones" and getattr(obj, "modality", None) not in (
            "image",
            "text",
            "paired",
        ):
            return (
                f"its modality {getattr(obj, 'modality', None)!r} is not 'image', 'text' or "
                "'paired'"
            )
        return None
    wanted = " or ".join(f"textclf.plugin_api.{p.__name__}" for p in protocols)
    missing = sorted({name for p in protocols for name in _members(p) if not hasattr(obj, name)})
    return f"{type(obj).__name__} is not a {wanted} (missing: {', '.join(missing) or '?'})"


def _members(protocol) -> set[str]:
    names = set(inspect.get_annotations(protocol)) | {
        name for name, value in vars(protocol).items() if callable(value)
    }
    return {name for name in names if not name.startswith("_")}


def _package_of(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "?"


class Registry:
    """Entry points of one group by name, loaded lazily."""

    def __init__(self, kind: str):
        if kind not in GROUPS:
            raise ValueError(kind)
        self.kind = kind
        self.group = GROUPS[kind]
        self._entries: Optional[dict[str, PluginEntry]] = None
        self._bound: dict[str, Any] = {}  # "name:ARG" -> what its family bound

    def entries(self) -> dict[str, PluginEntry]:
        """All entries of the group by name (duplicates marked as conflicts)."""
        if self._entries is None:
            found: dict[str, PluginEntry] = {}
            seen: set[tuple[str, str]] = set()
            for ep in metadata.entry_points(group=self.group):
                key = (ep.name, ep.value)
                if key in seen:  # the same distribution seen twice on sys.path
                    continue
                seen.add(key)
                entry = PluginEntry(ep.name, self.group, ep.value, _package_of(ep))
                entry._ep = ep  # type: ignore[attr-defined]
                if ep.name in found:
                    other = found[ep.name]
                    msg = (
                        f"{self.kind[:-1]} name '{ep.name}' is registered by both "
                        f"'{other.package}' and '{entry.package}'"
                    )
                    other.conflict = entry.conflict = msg
                    found[f"{ep.name}@{entry.package}"] = entry
                    continue
                found[ep.name] = entry
            self._entries = found
        return self._entries

    def load(self, entry: PluginEntry) -> Any:
        """Import one entry's object and check it against the plugin contract, recording (not
        raising) failures."""
        if not entry.loaded and entry.error is None:
            try:
                obj = entry._ep.load()  # type: ignore[attr-defined]
            except Exception as exc:  # a third-party plugin may raise anything
                entry.error = f"{type(exc).__name__}: {exc}"
                return None
            problem = contract_problem(self.kind, obj)
            if problem:
                entry.error = problem
                return None
            if plugin_compat.is_old_style(obj):
                obj = plugin_compat.adapt(self.kind, entry.name, entry.package, obj)
            entry.obj, entry.loaded = obj, True
        return entry.obj

    def load_all(self) -> list[PluginEntry]:
        """Load every entry (for listing); broken ones keep their error."""
        entries = list(self.entries().values())
        for entry in entries:
            if not entry.conflict:
                self.load(entry)
        return entries

    def names(self) -> list[str]:
        """Usable names (aliases included where a plugin declares them)."""
        names = []
        for name in self.entries():
            if "@" in name:
                continue
            names.append(name)
        return names

    def get(self, name: str) -> Any:
        """The plugin called ``name``, or the one its family binds for ``name:ARG``; exit-2 errors
        otherwise."""
        entries = self.entries()
        base, sep, arg = name.partition(":")
        entry = entries.get(name) or entries.get(base)
        if entry is None:
            alias = self._find_alias(name)
            if alias is not None:
                return alias
            raise unknown_choice(self.kind[:-1], name, self._display_names())
        if entry.conflict:
            raise TextclfError(entry.conflict)
        obj = self.load(entry)
        if entry.error:
            raise TextclfError(
                f"{self.kind[:-1]} plugin '{entry.name}' from '{entry.package}' "
                f"failed to load: {entry.error}"
            )
        family = isinstance(obj, Family)
        if entry.name == name and not sep:
            if family:
                raise TextclfError(f"{self.kind[:-1]} '{name}' needs an argument: '{name}:...'")
            return obj
        if not family:
            raise unknown_choice(self.kind[:-1], name, self._display_names())
        if not arg:
            raise TextclfError(f"{self.kind[:-1]} '{name}' needs an argument after ':'")
        # Bound once per name: one name is one plugin object for the whole process (an aligned
        # pair is the same object as image and as text backbone).
        if name not in self._bound:
            plugin = obj.bind(arg)
            problem = contract_problem(self.kind, plugin)
            if problem:
                raise TextclfError(
                    f"{self.kind[:-1]} family '{entry.name}' from '{entry.package}' bound "
                    f"'{arg}' to no plugin: {problem}"
                )
            self._bound[name] = plugin
        return self._bound[name]

    def _find_alias(self, name: str) -> Any:
        if self.kind != "prompts":  # only prompts declare aliases ("1" for "type1")
            return None
        for entry in self.entries().values():
            if entry.conflict:
                continue
            obj = self.load(entry)
            if obj is not None and name in getattr(obj, "aliases", ()):
                return obj
        return None

    def _display_names(self) -> list[str]:
        out = []
        for name, entry in self.entries().items():
            if "@" in name:
                continue
            obj = self.load(entry) if not entry.conflict else None
            out.append(f"{name}:..." if isinstance(obj, Family) else name)
        return out


_REGISTRIES: dict[str, Registry] = {}


def registry(kind: str) -> Registry:
    """The process-wide registry for ``kind`` (prompts, backbones, describers, datasets)."""
    if kind not in _REGISTRIES:
        _REGISTRIES[kind] = Registry(kind)
    return _REGISTRIES[kind]


def reset() -> None:
    """Forget loaded registries (tests that install plugins at run time call this)."""
    _REGISTRIES.clear()


def get_image_backbone(name: str) -> Any:
    """The image backbone called ``name`` (a paired one's image tower); text backbones are refused
    with the choices."""
    obj = registry("backbones").get(name)
    if obj.modality == "paired":
        return obj.image
    if obj.modality != "image":
        raise unknown_choice("image backbone", name, image_backbone_names())
    return obj


def get_text_backbone(name: str) -> Any:
    """The text backbone called ``name`` (``hf:<id>`` included; a paired one's text tower)."""
    obj = registry("backbones").get(name)
    if obj.modality == "paired":
        return obj.text
    if obj.modality != "text":
        raise unknown_choice("text backbone", name, text_backbone_names())
    return obj


def _backbone_names(modality: str) -> list[str]:
    reg = registry("backbones")
    out = []
    for name, entry in reg.entries().items():
        if "@" in name or entry.conflict:
            continue
        obj = reg.load(entry)
        family = isinstance(obj, Family)
        # A family that does not say what it binds may bind either kind: listed for both.
        kind = getattr(obj, "modality", None if family else "?")
        if obj is not None and kind in (modality, "paired", None):
            out.append(f"{name}:<id>" if family else name)
    return out


def image_backbone_names() -> list[str]:
    """Names of the installed image backbones."""
    return _backbone_names("image")


def text_backbone_names() -> list[str]:
    """Names of the installed text backbones."""
    return _backbone_names("text")
