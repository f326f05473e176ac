"""The paper's four prompt types (section 2.1), registered as ``type1``..``type4`` (aliases
``1``..``4``)."""

from __future__ import annotations

from textclf.plugin_api import PromptTemplate

_SYSTEM = "You describe categories of images precisely and concisely."

TYPE1 = PromptTemplate(
    "type1",
    "Describe what a {class_name} is with one sentence.",
    _SYSTEM,
    max_tokens=80,
    aliases=("1",),
)
TYPE2 = PromptTemplate(
    "type2",
    "Describe what a {class_name} is in detail with one paragraph.",
    _SYSTEM,
    max_tokens=250,
    aliases=("2",),
)
TYPE3 = PromptTemplate(
    "type3",
    "Describe what parts a {class_name} have with one sentence.",
    _SYSTEM,
    max_tokens=80,
    aliases=("3",),
)
TYPE4 = PromptTemplate(
    "type4",
    "Describe what parts a {class_name} have with one paragraph.",
    _SYSTEM,
    max_tokens=250,
    aliases=("4",),
)
