"""Prompt templates for the zero-shot heads of aligned image-text backbones (``textclf eval
--zero-shot``).

``photo`` is CLIP's single template; ``clip80`` the 80 ImageNet templates of CLIP's
prompt-engineering notebook (Radford et al., 2021), whose class embeddings are the normalised
mean over all of them (the "80 templates" practice, +1.5 points on ImageNet in the paper); a file
gives one template per line.
"""

from __future__ import annotations

from pathlib import Path

from textclf.errors import TextclfError
from textclf.files.jsonio import decode_utf8

CLIP80 = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)
TEMPLATE_SETS = {"photo": ("a photo of a {}.",), "clip80": CLIP80}


NAMED = "class_name"  # the named placeholder of textclf's own prompts, also taken here
MAX_FILE_BYTES = 1 << 20  # a templates file is a few lines; a bigger one is not a templates file


def parse_template(text: str) -> str:
    """``text`` with exactly one placeholder where the class name goes, ``{}`` or
    ``{class_name}``, returned with ``{}`` (literal braces stay doubled, ``{{`` and ``}}``).

    Anything else (no placeholder, two, a numbered or other named one, a format spec, a single
    ``{`` or ``}``) raises ``ValueError`` with the reason, so a template never fails or fills
    the wrong text halfway through an evaluation.
    """
    import string

    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{exc} (write {{{{ or }}}} for a literal brace)") from None
    fields = [(name, spec, conv) for _, name, spec, conv in parts if name is not None]
    if len(fields) != 1:
        raise ValueError(
            f"has {len(fields) if fields else 'no'} placeholder{'s' if len(fields) > 1 else ''}; "
            "it needs exactly one {} where the class name goes"
        )
    name, spec, conv = fields[0]
    if name not in ("", NAMED) or spec or conv:
        shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        raise ValueError(f"'{shown}' is not a placeholder textclf fills: write {{}}")
    out = []
    for literal, field_name, _, _ in parts:
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field_name is not None:
            out.append("{}")
    return "".join(out)


def check_templates(items, what: str = "templates") -> tuple[str, ...]:
    """Templates given as a list (the Python API): each parsed by :func:`parse_template`."""
    if isinstance(items, str) or not items:
        raise TextclfError(
            f"{what} must be a non-empty list of templates such as 'a photo of a {{}}.'"
        )
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse_template(str(item)))
        except ValueError as exc:
            raise TextclfError(f"{what}[{i}] {item!r} {exc}") from None
    return tuple(out)


def templates(name_or_file: str) -> tuple[str, ...]:
    """A named template set (:data:`TEMPLATE_SETS`), or the templates of a UTF-8 text file (one
    per line, each with ``{}`` where the class name goes; blank lines and ``#`` comments
    skipped). Every line is checked (:func:`parse_template`); an error names the file and the
    line."""
    if name_or_file in TEMPLATE_SETS:
        return TEMPLATE_SETS[name_or_file]
    path = Path(name_or_file)
    if not path.is_file():
        raise TextclfError(
            f"templates '{name_or_file}' are neither a set ({', '.join(TEMPLATE_SETS)}) nor a file"
        )
    if path.stat().st_size > MAX_FILE_BYTES:
        raise TextclfError(
            f"templates file '{path}' has {path.stat().st_size} bytes; a templates file holds a "
            f"few lines (at most {MAX_FILE_BYTES} bytes)"
        )
    raw = path.read_bytes()
    nul = raw.find(b"\0")
    if nul >= 0:
        raise TextclfError(
            f"templates file '{path}' is binary (a NUL byte at offset {nul}), not "
            "text with one template per line"
        )
    found = []
    for number, line in enumerate(decode_utf8(raw, path, "templates file").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(parse_template(line))
        except ValueError as exc:
            raise TextclfError(f"templates file '{path}' line {number}: {line!r} {exc}") from None
    if not found:
        raise TextclfError(f"templates file '{path}' holds no template")
    return tuple(found)
