"""The description part of ``--help``: prose that reflows, and examples a reader can copy.

A command's help text is written as paragraphs separated by blank lines. A line break inside a
prose paragraph of the source is only where the source line ended, so it becomes a space and
Rich wraps the paragraph at the terminal's width. An example (``Example: textclf ...``, or the
indented lines under ``Examples:``) is a command: it gets a line of its own under one
``Example:``/``Examples:`` heading; one too long for the terminal continues on the next line after
a shell `` \\`` (so it still runs when pasted), breaking only between shell words, and a trailing
``# comment`` that does not fit goes on the line above it.
"""

from __future__ import annotations

import inspect
import itertools
import re
import shlex
from dataclasses import dataclass

EXAMPLE = re.compile(r"^Examples?:\s*")
INDENT = "  "  # examples sit this far in from the prose


@dataclass
class Block:
    """One paragraph of a help text: ``prose`` or an ``example`` command (with its comment)."""

    kind: str
    text: str
    comment: str = ""


def clean(text: str | None) -> str:
    """The help text as Click reads it: common indentation removed, nothing after ``\\f``."""
    return inspect.cleandoc(text or "").partition("\f")[0].strip()


def first_paragraph(text: str | None) -> str:
    """The first paragraph on one line (the summary a group's command list shows)."""
    return " ".join(clean(text).split("\n\n", 1)[0].split())


def _example(command: str) -> Block:
    command, _, comment = command.partition(" # ")
    return Block("example", " ".join(command.split()), " ".join(comment.split()))


def blocks(text: str | None) -> list[Block]:
    """The paragraphs of a help text, each prose (its lines joined) or an example command."""
    out: list[Block] = []
    for paragraph in re.split(r"\n[ \t]*\n", clean(text)):
        lines = [line for line in paragraph.splitlines() if line.strip()]
        if not lines:
            continue
        head = EXAMPLE.match(lines[0].strip())
        if head:
            rest = lines[0].strip()[head.end() :]
            if rest:  # "Example: textclf ..." (the command may go on over the next lines)
                out.append(_example(" ".join([rest, *(line.strip() for line in lines[1:])])))
            else:  # "Examples:" then commands, one a line
                out.extend(_example(line.strip()) for line in lines[1:])
        elif all(line[:1].isspace() for line in lines):  # indented: commands, one a line
            out.extend(_example(line.strip()) for line in lines)
        else:
            out.append(Block("prose", " ".join(line.strip() for line in lines)))
    return out


def _shell_words(command: str) -> list[str]:
    """The command's words as typed, quotes kept (``'a photo of a {}.'`` is one word)."""
    lexer = shlex.shlex(command, posix=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: plain words
        return command.split()


def example_lines(example: Block, width: int) -> list[str]:
    """The lines of one example at ``width`` columns (the indent included): the command, continued
    after `` \\`` between shell words where it does not fit; its comment after it or above it."""
    room = width - len(INDENT)
    lines: list[str] = []
    for word in _shell_words(example.text):
        if lines and len(lines[-1]) + 1 + len(word) + 2 <= room:
            lines[-1] += " " + word
        else:
            if lines:
                lines[-1] += " \\"
            lines.append(("  " if lines else "") + word)
    if example.comment:
        comment = "# " + example.comment
        if len(lines) == 1 and len(lines[0]) + 2 + len(comment) <= room:
            lines[0] += "  " + comment
        else:
            lines.insert(0, comment)
    return [INDENT + line for line in lines]


def description(text: str | None, width: int, rest_style: str):
    """A Rich renderable of the help text for ``width`` columns: the first paragraph, then the
    others in ``rest_style``; each run of examples under one ``Example:``/``Examples:`` heading."""
    from rich.console import Group
    from rich.text import Text

    parts: list = []
    for kind, run in itertools.groupby(blocks(text), key=lambda block: block.kind):
        run = list(run)
        if kind == "example":
            if parts:
                parts.append(Text(""))
            parts.append(Text("Example:" if len(run) == 1 else "Examples:"))
            parts += [
                Text(line, no_wrap=True, overflow="ignore")
                for example in run
                for line in example_lines(example, width)
            ]
            continue
        for block in run:
            style = rest_style if parts else ""
            if parts:
                parts.append(Text(""))
            parts.append(Text.from_markup(block.text, style=style))
    return Group(*parts)
