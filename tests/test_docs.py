"""The README and docs/ stay true: short README, links and anchors that resolve, and every
``textclf ...`` command in a ```bash block names a real command with options it accepts."""

from __future__ import annotations

import re
import shlex
from functools import cache, lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

# The help options of every command (cli/_help.py's CONTEXT_SETTINGS).
HELP = {"-h", "--help"}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- README shape -------------------------------------------------------------------------------


def test_the_readme_is_short_and_starts_with_the_set_up():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 400, f"README.md has {len(lines)} lines; move detail to docs/"
    head = "\n".join(lines[:60])
    for needle in ("make demo", "make test", "source .venv/bin/activate"):
        assert needle in head, f"the README's first 60 lines do not mention {needle!r}"


# --- links and anchors --------------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are not links)."""
    text = _FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation (but hyphens and spaces) dropped,
    spaces to hyphens. Inline code and links count by their text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict = {}
    out = set()
    for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", text, flags=re.M):
        slug = github_slug(m.group(1))
        n = seen.get(slug, 0)
        out.add(slug if n == 0 else f"{slug}-{n}")  # GitHub numbers repeated headings
        seen[slug] = n + 1
    return frozenset(out)


def broken_links(path: Path, show=_rel) -> list:
    problems = []
    for target in _LINK.findall(_prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{show(path)}: {target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(
                f"{show(path)}: {target}: no heading with the anchor #{anchor} in {show(dest)}"
            )
    return problems


def test_the_slug_rules_are_githubs():
    assert github_slug("Exit codes and errors") == "exit-codes-and-errors"
    assert (
        github_slug("The paper preset and the authors' notebook")
        == "the-paper-preset-and-the-authors-notebook"
    )
    assert (
        github_slug("Runtimes: `--extract-runtime auto|torch|onnxruntime`")
        == "runtimes---extract-runtime-autotorchonnxruntime"
    )
    assert github_slug("CIFAR-10: natural images") == "cifar-10-natural-images"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


def test_the_link_checker_sees_broken_links(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n")
    page.write_text(
        "# Title\n\n[ok](#title) [bad](#nowhere) [gone](missing.md) `[code](#x)`\n"
        "[there](other.md#a-section) [not there](other.md#b-section) "
        "[web](https://example.org/#x)\n"
        "```bash\necho [not a link](#y)\n```\n"
    )
    assert broken_links(page, show=lambda p: p.name) == [
        "page.md: #nowhere: no heading with the anchor #nowhere in page.md",
        "page.md: missing.md: no such file",
        "page.md: other.md#b-section: no heading with the anchor #b-section in other.md",
    ]


# --- commands in ```bash blocks -----------------------------------------------------------------


@lru_cache(maxsize=1)
def command_tree() -> dict:
    """{("export", "onnx"): {"options": {name: takes_value}, "subcommands": set, "arguments":
    n}}."""
    import typer

    from textclf.cli.main import app

    root = typer.main.get_command(app)
    tree: dict = {}

    def walk(cmd, path: tuple) -> None:
        options = {}
        for param in cmd.params:
            if param.param_type_name != "option":
                continue
            takes_value = not (param.is_flag or param.count)
            for name in (*param.opts, *param.secondary_opts):
                options[name] = takes_value
        for name in root.context_settings.get("help_option_names", HELP):
            options[name] = False
        subcommands = dict(getattr(cmd, "commands", {}) or {})
        arguments = sum(1 for param in cmd.params if param.param_type_name == "argument")
        tree[path] = {"options": options, "subcommands": set(subcommands), "arguments": arguments}
        for name, sub in subcommands.items():
            walk(sub, path + (name,))

    walk(root, ())
    return tree


@lru_cache(maxsize=1)
def global_anywhere() -> frozenset:
    """-q/-v/--debug: the app's parser moves them in front of the command, so they go anywhere."""
    from textclf.cli.main import GLOBAL_FLAGS

    return frozenset(GLOBAL_FLAGS)


def bash_blocks(text: str) -> list:
    return re.findall(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", text, flags=re.S | re.M)


def _logical_lines(block: str) -> list:
    """Lines with their backslash continuations joined."""
    out, current = [], ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return out


def _words(line: str) -> list:
    """Shell words of one line, comments dropped (shlex honours quotes), `$(...)` kept as one
    word."""
    line = re.sub(r"\$\([^()]*\)", "SUBSTITUTION", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: not a line we can judge
        return []


def textclf_invocations(block: str) -> list:
    """The argument lists that follow `textclf`, `python -m textclf` or `torchrun ... -m
    textclf`."""
    found = []
    for line in _logical_lines(block):
        words = _words(line)
        # split into simple commands at pipes, lists and redirections
        commands, current = [], []
        for word in words:
            if word and set(word) <= set(";&|<>"):
                commands.append(current)
                current = []
            else:
                current.append(word)
        commands.append(current)
        for cmd in commands:
            while cmd and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", cmd[0]):  # VAR=value prefixes
                cmd = cmd[1:]
            for i, word in enumerate(cmd):
                is_textclf = word == "textclf" or word.endswith("/textclf")
                if is_textclf and (
                    i == 0 or cmd[i - 1] == "-m" or cmd[0] in ("time", "exec", "sudo", "env")
                ):
                    found.append(cmd[i + 1 :])
                    break
    return found


def check_invocation(args: list) -> list:
    """What is wrong with `textclf ARGS` (an empty list when nothing is)."""
    tree = command_tree()
    path: tuple = ()
    problems = []
    i = 0
    positional_seen = False
    while i < len(args):
        word = args[i]
        if word == "--":
            break
        node = tree[path]
        if word.startswith("-") and word != "-" and not re.match(r"^-\d", word):
            name, eq, _ = word.partition("=")
            if name in global_anywhere() and not eq:
                i += 1
                continue
            takes = node["options"].get(name)
            if takes is None:
                shown = " ".join(("textclf",) + path)
                problems.append(f"{shown}: no option {name}")
                i += 1
                continue
            i += 2 if takes and not eq else 1
            continue
        if not positional_seen and word in node["subcommands"]:
            path = path + (word,)
            i += 1
            continue
        if node["subcommands"]:  # a group takes no positional argument, only its commands
            shown = " ".join(("textclf",) + path)
            problems.append(f"{shown}: no command {word!r}")
            break
        if not node["arguments"]:
            shown = " ".join(("textclf",) + path)
            problems.append(f"{shown}: takes no argument, got {word!r}")
            break
        positional_seen = True
        i += 1
    if (
        path == ()
        and not problems
        and not set(args) & (HELP | {"--version", "--install-completion", "--show-completion"})
    ):
        problems.append("textclf: no command given")
    return problems


def test_the_command_checker_rejects_what_the_cli_rejects():
    snippet = "textclf train --no-such-flag\n"
    (args,) = textclf_invocations(snippet)
    assert check_invocation(args) == ["textclf train: no option --no-such-flag"]
    assert check_invocation(["frobnicate"]) == ["textclf: no command 'frobnicate'"]
    assert check_invocation(["export", "onnx", "runs/x", "--int9"]) == [
        "textclf export onnx: no option --int9"
    ]
    assert check_invocation(["export", "bogus"]) == ["textclf export: no command 'bogus'"]
    assert check_invocation(["train", "runs/x"]) == [
        "textclf train: takes no argument, got 'runs/x'"
    ]
    # what it accepts: values, global flags after the command, sub-groups, --opt=value
    assert check_invocation(["eval", "runs/x", "-q", "--min-accuracy", "0.9"]) == []
    assert check_invocation(["-v", "train", "--epochs=5", "--debug"]) == []
    assert check_invocation(["describe", "--dataset", "show"]) == []  # a value, not the subcommand
    assert check_invocation(["cache", "prune", "--older-than", "30", "--dry-run"]) == []


def test_the_invocation_finder_reads_shell_lines():
    block = (
        "OPENAI_API_KEY=... textclf describe --dataset cifar10   # a comment --bogus\n"
        "find photos -name '*.png' | textclf predict m.onnx - --output new.csv\n"
        "torchrun --nproc-per-node 2 -m textclf train \\\n    --device cpu\n"
        "python -m textclf --version\n"
        "tensorboard --logdir runs/\n"
        "textclf predict m.onnx $(ls photos | head -3) --top-k 1\n"
    )
    assert textclf_invocations(block) == [
        ["describe", "--dataset", "cifar10"],
        ["predict", "m.onnx", "-", "--output", "new.csv"],
        ["train", "--device", "cpu"],
        ["--version"],
        ["predict", "m.onnx", "SUBSTITUTION", "--top-k", "1"],
    ]


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_documented_command_is_one_the_cli_accepts(page):
    problems = []
    for block in bash_blocks(page.read_text(encoding="utf-8")):
        for args in textclf_invocations(block):
            problems += [
                f"{_rel(page)}: textclf {' '.join(args)}: {p}" for p in check_invocation(args)
            ]
    assert problems == []


def test_the_pages_have_bash_commands_to_check():
    count = sum(
        len(textclf_invocations(b))
        for page in PAGES
        for b in bash_blocks(page.read_text(encoding="utf-8"))
    )
    assert count >= 40, count


# --- presets the pages name run as given --------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(__import__("textclf.presets").presets.PRESETS))
def test_every_preset_resolves_its_descriptions_for_train_and_the_paper_grid(
    preset, tmp_path, monkeypatch
):
    """``textclf train --preset P`` and ``textclf ablate --paper --preset P``, in a folder with
    nothing but what textclf ships: every cell of the grid (prompt types, controls such as
    shuffled) finds its descriptions and passes the grid's own check before any work (the tiny
    preset's did not: no descriptions for its synthetic set)."""
    from textclf.ablation.cells import check_grid, paper_plan, with_reference
    from textclf.training.preflight import preflight
    from textclf.training.resolve import resolve_config

    monkeypatch.chdir(tmp_path)  # no descriptions/ folder here
    preflight(resolve_config(preset, None, {}))
    cells, _ = paper_plan({}, preset)
    cells = with_reference(cells)
    assert len(check_grid(cells, [0], {}, preset)) == len(cells) >= 10
