"""Every option of every command has the library's default and choice list (SPEC 12, issue 30).

The walk covers the whole command tree of ``textclf.cli.main.app``. Each command names the library
settings it exposes (:data:`SOURCES`: a request dataclass, a function's signature, or the
``default`` preset of :class:`~textclf.config.TrainConfig`); each option is matched to a setting
by its parameter name, and an option that has none is listed in :data:`CLI_ONLY` with the
reason. The check then compares, option by option:

- the default: the option's own, or, when it is None because the value is resolved later (a
  preset's, "the run's"), the ``[default: ...]`` its help shows;
- the choices: the option's metavar (``train|test``) or its help's ``One of: ...``, against the
  setting's (a dataclass field's ``metadata["choices"]``). Capitalised parts (``FILE``) are
  placeholders, not choices.

The library is read when the check runs, so the last tests change a library default and see the
check report it: the test cannot pass by construction.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import PurePath

import pytest
import typer.main
from rich.text import Text

from textclf.ablation.request import GridRequest
from textclf.api import add_classes
from textclf.api import train as train_api
from textclf.cli.main import app
from textclf.config import CHOICES, PRESETS, TrainConfig
from textclf.data import cache_admin
from textclf.descriptions.request import DescribeRequest
from textclf.evaluation.request import EvalRequest
from textclf.exports.request import ExportRequest, SamplesRequest
from textclf.registry import GROUPS
from textclf.serving.request import PredictRequest
from textclf.training.tracking import TRACKERS


class TrainDefaults:
    """The settings ``train`` shows: :class:`TrainConfig` under the ``default`` preset."""

    __name__ = "the default preset"

    def settings(self) -> dict:
        """``{name: (default, choices)}``."""
        out = {}
        for spec in dataclasses.fields(TrainConfig):
            default = PRESETS["default"].get(spec.name, spec.default)
            if default is dataclasses.MISSING:
                default = spec.default_factory()
            choices = tuple(PRESETS) if spec.name == "preset" else CHOICES.get(spec.name)
            out[spec.name] = (default, tuple(choices) if choices else None)
        return out


class Library:
    """A dataclass's fields, or a function's parameters (``choices``: where its lists live)."""

    def __init__(self, source, choices: dict | None = None):
        self.source, self.choices, self.__name__ = source, choices or {}, source.__name__

    def settings(self) -> dict:
        """``{name: (default, choices)}``, read now."""
        if dataclasses.is_dataclass(self.source):
            out = {}
            for spec in dataclasses.fields(self.source):
                default = spec.default
                if (
                    default is dataclasses.MISSING
                    and spec.default_factory is not dataclasses.MISSING
                ):
                    default = spec.default_factory()
                choices = spec.metadata.get("choices")
                out[spec.name] = (default, tuple(choices) if choices is not None else None)
            return out
        return {
            name: (param.default, self.choices.get(name))
            for name, param in inspect.signature(self.source).parameters.items()
            if param.default is not inspect.Parameter.empty
        }


class Fixed:
    """Settings the library states as constants (``{name: (default, choices)}``)."""

    def __init__(self, name: str, settings: dict):
        self.__name__, self._settings = name, settings

    def settings(self) -> dict:
        """The constants, read now."""
        return {name: read() for name, read in self._settings.items()}


TRAIN = TrainDefaults()
SOURCES = {
    (): [],
    ("describe",): [Library(DescribeRequest)],
    ("describe", "show"): [],
    ("train",): [TRAIN, Library(train_api, {"log": TRACKERS})],
    ("eval",): [Library(EvalRequest)],
    ("ablate",): [Library(GridRequest), TRAIN],
    ("export",): [],
    ("export", "onnx"): [Library(ExportRequest)],
    ("export", "samples"): [Library(SamplesRequest)],
    ("predict",): [Library(PredictRequest)],
    # The plugin kinds are the registry's entry-point groups (all of them by default).
    ("plugins",): [Fixed("registry.GROUPS", {"kind": lambda: (None, tuple(GROUPS))})],
    ("classes",): [],
    ("classes", "list"): [],
    ("classes", "add"): [Library(add_classes)],
    ("cache",): [],
    ("cache", "ls"): [Library(cache_admin.scan)],
    ("cache", "prune"): [Library(cache_admin.prune)],
    ("cache", "clear"): [Library(cache_admin.clear)],
}
JSON = "--json: how the CLI prints its result"
OLD = "the hidden old spelling of another option, merged into it"
AXIS = "a grid axis (GridRequest.axes): not varied unless given"
CLI_ONLY = {
    ((), "quiet"): "-q: the process's verbosity, a CLI matter",
    ((), "verbose"): "-v: the process's verbosity, a CLI matter",
    ((), "debug"): "--debug: tracebacks on errors, a CLI matter",
    ((), "version"): "--version prints the version and exits",
    ((), "install_completion"): "Typer's shell completion",
    ((), "show_completion"): "Typer's shell completion",
    (("describe",), "out_alias"): OLD,
    (("describe",), "json_out"): JSON,
    (("describe", "show"), "json_out"): JSON,
    (("train",), "config"): "the TOML file the settings are read from, not a setting",
    (("train",), "print_config"): "prints the resolved settings instead of training",
    (("train",), "no_text"): "the library's NO_TEXT settings (presets.with_no_text), as the "
    "API's no_text=True: a set of settings, not one",
    (("train",), "json_out"): JSON,
    (("eval",), "json_out"): JSON,
    **{
        (("ablate",), axis): AXIS
        for axis in (
            "prompt_types",
            "clf_weights",
            "freeze_text",
            "negatives",
            "train_fractions",
            "image_backbones",
            "text_backbones",
            "head_inits",
        )
    },
    (("ablate",), "out_alias"): OLD,
    (("ablate",), "json_out"): JSON,
    (("export", "onnx"), "out_alias"): OLD,
    (("export", "onnx"), "provider_alias"): OLD,
    (("export", "onnx"), "fp16"): "a switch for ExportRequest.precision 'fp16'",
    (("export", "onnx"), "int8"): "a switch for ExportRequest.precision 'int8'",
    (("export", "onnx"), "json_out"): JSON,
    (("export", "samples"), "out_alias"): OLD,
    (("export", "samples"), "json_out"): JSON,
    (("predict",), "provider_alias"): OLD,
    (("predict",), "json_out"): JSON,
    (("plugins",), "json_out"): JSON,
    (("classes", "list"), "json_out"): JSON,
    (("classes", "add"), "json_out"): JSON,
    (("cache", "ls"), "json_out"): JSON,
    (("cache", "prune"), "json_out"): JSON,
    (("cache", "clear"), "yes"): "answers the CLI's confirmation prompt",
    (("cache", "clear"), "json_out"): JSON,
}
NOTE = re.compile(r"\[default: (.*)\]\s*$")
ONE_OF = re.compile(r"One of: (.*?)\.(\s|$)")


def _walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


def _flag(param) -> str:
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def cli_choices(param):
    """The choices an option shows: its metavar ``a|b``, else ``One of: a, b.`` in its help."""
    metavar = getattr(param, "metavar", None) or ""
    found = ONE_OF.search(Text.from_markup(param.help or "").plain)
    parts = metavar.split("|") if "|" in metavar else found.group(1).split(", ") if found else []
    values = tuple(p for p in parts if p == p.lower())  # FILE, FILE.csv: placeholders
    return values or None


def _shown(value) -> set:
    """How a default may be written in a ``[default: ...]`` note."""
    forms = {str(value)}
    if isinstance(value, float):
        forms.add(f"{value:g}")
    return forms


def default_problem(param, default) -> str | None:
    """What is wrong with the option's default, given the library's (None: nothing)."""
    if param.default is not None:
        if isinstance(default, PurePath) or isinstance(param.default, PurePath):
            same = str(param.default) == str(default)
        else:
            same = param.default == default and type(param.default) is type(default)
        return None if same else f"the default {param.default!r} is not the library's {default!r}"
    if default is None:
        return None  # resolved later in both; the help's note says how
    note = NOTE.search(Text.from_markup(param.help or "").plain)
    if note is None:
        return f"shows no default; the library's is {default!r}"
    if isinstance(default, bool) and param.secondary_opts:  # a switch pair: the side taken
        expected = {(param.opts if default else param.secondary_opts)[0].lstrip("-")}
    else:
        expected = _shown(default)
    if note.group(1) not in expected:
        return f"shows the default {note.group(1)!r}, the library's is {default!r}"
    return None


def mismatches(root=None) -> list[str]:
    """Every option whose default or choices differ from the library's, one line each."""
    problems = []
    for path, command in _walk(root or typer.main.get_command(app)):
        shown = " ".join(("textclf", *path))
        if path not in SOURCES:
            problems.append(f"{shown}: a command not mapped to its library settings (SOURCES)")
            continue
        sources = [(s.__name__, s.settings()) for s in SOURCES[path]]
        for param in command.params:
            if getattr(param, "param_type_name", "") != "option" or (path, param.name) in CLI_ONLY:
                continue
            where = f"{shown} {_flag(param)}"
            found = next(((n, s[param.name]) for n, s in sources if param.name in s), None)
            if found is None:
                problems.append(
                    f"{where}: no library setting '{param.name}' (or list it in CLI_ONLY)"
                )
                continue
            source, (default, choices) = found
            problem = default_problem(param, default)
            if problem:
                problems.append(f"{where}: {problem} ({source}.{param.name})")
            shows = cli_choices(param)
            if set(shows or ()) != set(choices or ()):
                problems.append(
                    f"{where}: the choices {shows} are not the library's {choices} "
                    f"({source}.{param.name})"
                )
    return problems


def test_every_option_has_the_librarys_default_and_choices():
    assert mismatches() == []


def test_every_command_and_listed_option_exists():
    """The tables describe the CLI as it is: no stale command or CLI-only option."""
    tree = dict(_walk(typer.main.get_command(app)))
    assert set(SOURCES) == set(tree)
    for path, name in CLI_ONLY:
        assert name in {p.name for p in tree[path].params}, (path, name)


def _field(cls, name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def test_a_changed_library_default_is_reported(monkeypatch):
    monkeypatch.setattr(_field(EvalRequest, "device"), "default", "cpu")
    monkeypatch.setattr(_field(ExportRequest, "opset"), "default", 17)
    monkeypatch.setitem(PRESETS["default"], "epochs", 16)
    monkeypatch.setattr(cache_admin.prune, "__defaults__", (None, None, True, False))
    assert mismatches() == [
        "textclf train --epochs: shows the default '15', the library's is 16 "
        "(the default preset.epochs)",
        "textclf eval --device: the default 'auto' is not the library's 'cpu' (EvalRequest.device)",
        "textclf ablate --epochs: shows the default '15', the library's is 16 "
        "(the default preset.epochs)",
        "textclf export onnx --opset: the default 18 is not the library's 17 (ExportRequest.opset)",
        "textclf cache prune --dry-run: the default False is not the library's True "
        "(prune.dry_run)",
    ]


def test_a_changed_choice_list_is_reported(monkeypatch):
    # Build every command first: a subcommand's module is imported when the tree is built, and it
    # reads its choices then (the patch stands for a library changed after the CLI was written)
    root = typer.main.get_command(app)
    metadata = {"choices": ("train", "test", "val")}
    monkeypatch.setattr(_field(EvalRequest, "split"), "metadata", metadata)
    monkeypatch.setattr(_field(PredictRequest, "head"), "metadata", {})
    assert mismatches(root) == [
        "textclf eval --split: the choices ('train', 'test', 'holdout') are not the library's "
        "('train', 'test', 'val') (EvalRequest.split)",
        "textclf predict --head: the choices ('classifier', 'text', 'ensemble') are not the "
        "library's None (PredictRequest.head)",
    ]


def test_an_option_without_a_library_setting_is_reported(monkeypatch):
    monkeypatch.delitem(CLI_ONLY, (("eval",), "json_out"))
    monkeypatch.setitem(SOURCES, ("predict",), [])
    problems = mismatches()
    assert "textclf eval --json: no library setting 'json_out' (or list it in CLI_ONLY)" in problems
    assert (
        "textclf predict --top-k: no library setting 'top_k' (or list it in CLI_ONLY)" in problems
    )


@pytest.mark.parametrize("name", ["timeout", "max_retries"])
def test_the_openai_describer_states_the_requests_defaults(name):
    """The openai plugin keeps its own constants (plugins/ is the plugin's); they must be the
    request's, which the CLI shows."""
    from textclf.descriptions.request import DEFAULT_LLM_TEMPERATURE
    from textclf.plugins.describers import openai_describer

    assert openai_describer.DEFAULT_TEMPERATURE == DEFAULT_LLM_TEMPERATURE
    assert getattr(openai_describer, f"DEFAULT_{name.upper()}") == getattr(DescribeRequest, name)


def _library_functions():
    """(function, its parameter, the request field whose default it takes)."""
    from textclf.api import Run, describe
    from textclf.evaluation.aligned_zero_shot import evaluate_zero_shot
    from textclf.evaluation.metrics import evaluate_run
    from textclf.evaluation.onnx_eval import evaluate_onnx, onnx_split_outputs
    from textclf.exports.samples import write_samples
    from textclf.serving.predict import load_predictor, predict_files

    rows = [
        (Run.evaluate, "device", EvalRequest, "device"),
        (Run.evaluate, "split", EvalRequest, "split"),
        (evaluate_run, "device", EvalRequest, "device"),
        (evaluate_run, "split", EvalRequest, "split"),
        (evaluate_zero_shot, "device", EvalRequest, "device"),
        (evaluate_onnx, "provider", EvalRequest, "device"),
        (onnx_split_outputs, "provider", EvalRequest, "device"),
        (Run.predict, "batch_size", PredictRequest, "batch_size"),
        (Run.predict, "head", PredictRequest, "head"),
        (predict_files, "batch_size", PredictRequest, "batch_size"),
        (predict_files, "top", PredictRequest, "top_k"),
        (load_predictor, "provider", PredictRequest, "provider"),
        (write_samples, "out_dir", SamplesRequest, "output"),
        (write_samples, "n", SamplesRequest, "n"),
        (write_samples, "split", SamplesRequest, "split"),
        (describe, "dataset", DescribeRequest, "dataset"),
        (describe, "samples", DescribeRequest, "samples"),
        (describe, "prompt_type", DescribeRequest, "prompt_type"),
    ]
    return rows


@pytest.mark.parametrize(
    "function, name, request_type, field",
    _library_functions(),
    ids=[f"{r[0].__qualname__}.{r[1]}" for r in _library_functions()],
)
def test_the_library_functions_take_the_requests_defaults(function, name, request_type, field):
    """``Run.evaluate`` and ``textclf eval`` agree (device auto) and so does every function that
    the CLI's commands call: one default, the request's."""
    default = inspect.signature(function).parameters[name].default
    assert default == _field(request_type, field).default
