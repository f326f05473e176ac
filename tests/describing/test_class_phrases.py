"""Class names become text one way everywhere (issue 34): words, not folder names, and "a"/"an"
by sound; a user's own descriptions are kept as written."""

from __future__ import annotations

import pytest

from textclf.class_phrases import article, class_phrase, fill
from textclf.descriptions.describers import offline_descriptions
from textclf.evaluation.aligned_zero_shot import class_texts
from textclf.plugins.prompts import TYPE1

NAMES = ["colts-foot", "lily_valley", "iris", "AppleTree"]
EXPECTED = [
    "a photo of a colts foot.",
    "a photo of a lily valley.",
    "a photo of an iris.",
    "a photo of an apple tree.",
]


def test_classname_describer_and_control_write_words_with_their_article():
    """The classname describer (and the classname control, which calls it) writes words."""
    desc = offline_descriptions("classname", "imagefolder:/nowhere", NAMES)
    assert [desc[c] for c in NAMES] == [[t] for t in EXPECTED]


def test_zero_shot_templates_and_llm_prompts_use_the_same_phrase():
    named = class_texts("templates", {}, NAMES, ("a photo of a {}.", "A {} in a video game."))
    assert [named[c][0] for c in NAMES] == EXPECTED
    assert named["iris"][1] == "An iris in a video game."
    assert TYPE1.render("iris") == "Describe what an iris is with one sentence."
    assert TYPE1.render("colts-foot") == "Describe what a colts foot is with one sentence."


def test_descriptions_a_user_wrote_are_kept_as_written():
    desc = {"colts-foot": ["A colt's-foot has a yellow head."]}
    assert class_texts("descriptions", desc, ["colts-foot"]) == desc


@pytest.mark.parametrize(
    ("name", "phrase", "art"),
    [
        ("Ankle boot", "ankle boot", "an"),
        ("USB_cable", "USB cable", "a"),
        ("SUV", "SUV", "an"),
        ("unicorn", "unicorn", "a"),
        ("umbrella", "umbrella", "an"),
        ("hour-glass", "hour glass", "an"),
        ("European_Goldfinch", "european goldfinch", "a"),
        ("one-piece", "one piece", "a"),
        ("T-shirt/top", "T shirt/top", "a"),
        ("8ball", "8ball", "an"),
    ],
)
def test_phrase_and_article(name, phrase, art):
    assert class_phrase(name) == phrase
    assert article(class_phrase(name)) == art


def test_only_the_article_before_the_name_changes():
    assert fill("a dog and a {}", "owl") == "a dog and an owl"
    assert fill("the {}", "owl") == "the owl"
