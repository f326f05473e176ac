"""A class name as English text: the one normalisation wherever a class name becomes text.

Class names are often folder names (``colts-foot``, ``lily_valley``, ``AppleTree``); put into
"a photo of a {}." as they are, they give a sentence encoder "a photo of a colts-foot." and
"a photo of a iris.". Measured on a 12-class flowers set (issue 34), the class-name control
scored below chance on held-out pairs that way. So every place that turns a class name into text
(the ``classname`` describer and control, the prompt templates sent to an LLM, the zero-shot
templates) goes through :func:`class_phrase` and :func:`fill`: ``-`` and ``_`` and camelCase
become spaces, capitalised words are lower-cased (acronyms such as ``USB`` are kept), and the
article in front of the name is "a" or "an" by sound. Texts a user wrote (descriptions) are never
changed.
"""

from __future__ import annotations

import re

# Words that start with a vowel letter but a consonant sound ("a unicorn", "a one-way street"),
# and with a consonant letter but a vowel sound ("an hour").
_CONSONANT_SOUND = ("uni", "use", "usu", "usa", "ute", "uti", "uri", "ure", "uro", "ubi", "eu")
_CONSONANT_WORDS = ("one", "once", "ewe", "ewes", "u", "uk")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")
# Letters whose English name starts with a vowel sound: "an F", "an X-ray", "an SUV".
_VOWEL_LETTERS = set("AEFHILMNORSX")


def class_phrase(name: str) -> str:
    """The class name as words: ``colts-foot`` -> ``colts foot``, ``lily_valley`` -> ``lily
    valley``, ``AppleTree`` -> ``apple tree``, ``Ankle boot`` -> ``ankle boot``, ``USB_cable``
    -> ``USB cable``."""
    text = re.sub(r"[-_]+", " ", name)
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)  # appleTree -> apple Tree
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", text)  # USBCable -> USB Cable
    words = [w.lower() if re.fullmatch(r"[A-Z][a-z]+", w) else w for w in text.split()]
    return " ".join(words) or name


def article(phrase: str) -> str:
    """``"a"`` or ``"an"`` for a phrase, by the sound of its first word (a rule of thumb:
    spelling plus the common exceptions)."""
    word = (phrase.split() or [""])[0]
    core = re.sub(r"[^A-Za-z0-9]", "", word)
    if not core:
        return "a"
    if core[0].isdigit():
        return "an" if core.startswith("8") or core in ("11", "18") else "a"
    if len(core) == 1 or (core.isupper() and len(core) <= 4):  # a letter or an acronym, spelt out
        return "an" if core[0].upper() in _VOWEL_LETTERS else "a"
    low = core.lower()
    if low in _CONSONANT_WORDS or low.startswith(_CONSONANT_SOUND):
        return "a"
    if low.startswith(_SILENT_H):
        return "an"
    return "an" if low[0] in "aeiou" else "a"


def with_article(name: str) -> str:
    """``"an iris"``, ``"a colts foot"``: the class phrase after its article."""
    phrase = class_phrase(name)
    return f"{article(phrase)} {phrase}"


def fix_article(template: str, name: str, placeholder: str = "{}") -> str:
    """``template`` with an "a"/"an" right before ``placeholder`` chosen by the sound of the class
    phrase (the placeholder and the rest of the template kept as written)."""
    wanted = article(class_phrase(name))

    def choose(match: re.Match) -> str:
        word = wanted.capitalize() if match.group(1)[0].isupper() else wanted
        return word + match.group(2)

    return re.sub(r"\b([Aa]n?)(\s+)(?=" + re.escape(placeholder) + ")", choose, template)


def fill(template: str, name: str, placeholder: str = "{}") -> str:
    """``template`` with ``placeholder`` replaced by the class phrase and its article chosen by
    sound: ``"a photo of a {}."`` -> ``"a photo of an iris."``."""
    return fix_article(template, name, placeholder).replace(placeholder, class_phrase(name))


def photo_sentence(name: str) -> str:
    """The class-name control's text: ``"a photo of an iris."``."""
    return fill("a photo of a {}.", name)
