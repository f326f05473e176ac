"""Control describers: ``classname`` ("a photo of a {class}.") and ``random-words`` (seeded noise).

They let an ablation ask whether the *content* of a description matters: ``classname`` carries
only the label, ``random-words`` gives each class a distinct but meaningless text.
"""

from __future__ import annotations

import random

from textclf.plugin_api import DescriberBase, DescriberPlugin

# Plain, visually neutral English words (no class names of the built-in datasets).
WORDS = (
    "about above across action active actual after again agree ahead allow almost alone along "
    "already always amount answer anyone appear around arrive article aside attempt average "
    "balance basic become before begin behind believe below beside better between beyond border "
    "borrow bottom brief bring broad budget build busy button calm camera candle capital career "
    "careful carry center chance change chapter charge choice circle claim classic clear climate "
    "close coffee column comfort common copper corner cotton county couple course credit current "
    "custom damage danger debate decade decide degree demand depend design detail device differ "
    "dinner direct doctor double dozen drama during early editor effect effort either eleven "
    "empty energy engine enough entire escape estate event exact expect expert extend fabric "
    "factor fairly family famous favor figure final finger finish flavor follow forest formal "
    "forward friend future garden gather gentle global golden ground growth guitar handle happen "
    "harbor health height hidden history honest humble island itself jacket journey junior "
    "kettle kitchen ladder launch lawyer leader lesson letter likely limit linen listen little "
    "local lumber manner market matter meadow medium member memory method middle minute mirror "
    "modern moment motion museum narrow nation nature nearly number object office orange origin "
    "output parent partly people pepper period permit person pillow planet pocket policy pretty "
    "profit proper public purple puzzle quarter quickly rather reason record region remote repeat "
    "report result return ribbon river saddle salmon sample season second secret select series "
    "silver simple single sister sketch smooth social spirit spring square status steady stone "
    "strong studio summer supply survey switch symbol system talent target temple tender theory "
    "thirty ticket timber tomato travel tunnel twelve unique update useful valley velvet village "
    "violin visual volume wander weekly window winter wisdom wonder worker yellow zipper"
).split()


class ClassnameDescriber(DescriberBase):
    """``a photo of a {class}.``: the label only (CLIP's prompt), a control for description content."""

    def max_samples(self, class_name: str) -> int:
        """The text is deterministic: one sample per class."""
        return 1

    def describe(self, class_name: str, prompt=None, sample_index: int = 0) -> str:
        """The class-name sentence."""
        return f"a photo of a {class_name}."

    def provenance(self) -> dict:
        """Provenance fields for the output file."""
        return {"describer": "classname", "label": "classname"}


class RandomWordsDescriber(DescriberBase):
    """Seeded random words, as long as the prompt asks (a sentence or a paragraph)."""

    def __init__(self, seed: int | None = 0, class_names: list[str] | None = None, **_options):
        self.seed = 0 if seed is None else int(seed)
        banned = {w.lower() for c in (class_names or []) for w in c.replace("/", " ").split()}
        self.words = [w for w in WORDS if w not in banned]

    def max_samples(self, class_name: str) -> None:
        """Any number of samples (each one differs)."""
        return None

    def describe(self, class_name: str, prompt=None, sample_index: int = 0) -> str:
        """Random words for one class and sample; the same inputs give the same words."""
        rng = random.Random(f"textclf-random-words:{self.seed}:{class_name}:{sample_index}")
        budget = getattr(prompt, "max_tokens", 80)
        n = 12 if budget <= 100 else 48
        words = [rng.choice(self.words) for _ in range(n)]
        return " ".join(words).capitalize() + "."

    def provenance(self) -> dict:
        """Provenance fields for the output file."""
        return {"describer": "random-words", "seed": self.seed, "label": f"random-words (seed {self.seed})"}


CLASSNAME = DescriberPlugin("classname", 'control: "a photo of a {class}." (label only)',
                            lambda **_o: ClassnameDescriber())
RANDOM_WORDS = DescriberPlugin("random-words", "control: seeded random words per class (--seed)",
                               lambda **o: RandomWordsDescriber(**o))
