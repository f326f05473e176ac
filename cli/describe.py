"""``textclf describe``: write class descriptions (one JSON per dataset and prompt, with
provenance)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, handle_errors, print_json
from textclf.cli._help import TextclfTyper
from textclf.cli._options import library_option, merge_alias
from textclf.cli._progress import is_quiet, note, reporter
from textclf.descriptions.engine import run_describe
from textclf.descriptions.files import descriptions_hash, load_descriptions
from textclf.descriptions.prompts import DEFAULT_PROMPT_TYPE
from textclf.descriptions.request import (
    BASE_URL_DEFAULT_NOTE,
    DEFAULT_LLM_TEMPERATURE,
    MODEL_DEFAULT_NOTE,
    TEMPERATURE_RANGE,
    DescribeRequest,
    plan,
)

HELP = (
    "Write class descriptions for a dataset (one JSON per prompt, with provenance).\n\n"
    "Files go to descriptions/<dataset>/<prompt>.json. Describers: openai (key from "
    "OPENAI_API_KEY; "
    "--base-url for any OpenAI-compatible server such as vLLM or Ollama), builtin (shipped, "
    "offline: digits, fashion-mnist, cifar10), classname, random-words, file:PATH (JSON or CSV). "
    "A rerun fetches only what is missing; --force starts over. Token usage is summed per class "
    "and "
    "per file. 'textclf describe show FILE' prints a file's texts.\n\n"
    "Example: textclf describe --dataset cifar10 --prompt-type all --describer builtin\n\n"
    "Example: textclf describe --base-url http://localhost:11434/v1 --model llama3.1   # no key "
    "needed"
)


def _words(texts: list[str]) -> str:
    counts = [len(t.split()) for t in texts]
    if not counts:
        return "0"
    mean = sum(counts) / len(counts)
    return str(counts[0]) if len(counts) == 1 else f"{mean:.0f} (x{len(counts)})"


def _source(label: str, kept: int, fetched: int) -> str:
    if fetched and kept:
        return f"{label} ({fetched} new, {kept} kept)"
    if fetched:
        return label
    return "kept (already in file)"


app = TextclfTyper(
    help=HELP,
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode="rich",
    subcommand_metavar="[show FILE]",
)


def _option(name: str, *flags: str, **kwargs):
    """An option for the :class:`DescribeRequest` field ``name`` (its default, its choices)."""
    return library_option(DescribeRequest, name, *flags, **kwargs)


@app.callback(invoke_without_command=True)
@handle_errors
def command(
    ctx: typer.Context,
    dataset: str = _option(
        "dataset",
        "--dataset",
        "-d",
        help="Dataset whose classes to describe (see textclf plugins).",
    ),
    prompt_type: Optional[str] = _option(
        "prompt_type",
        "--prompt-type",
        "-p",
        help="1|2|3|4|all or a prompt name.",
        note=DEFAULT_PROMPT_TYPE,
    ),
    prompt_template: Optional[str] = _option(
        "prompt_template",
        "--prompt-template",
        help="A custom prompt with {class_name}.",
        note="none",
    ),
    describer: Optional[str] = _option(
        "describer",
        "--describer",
        help="openai | builtin | classname | random-words | file:PATH.",
        note="openai with a key or server, else builtin",
    ),
    model: Optional[str] = _option("model", "--model", help="Chat model.", note=MODEL_DEFAULT_NOTE),
    base_url: Optional[str] = _option(
        "base_url",
        "--base-url",
        help="OpenAI-compatible server URL (a local one needs no key).",
        note=BASE_URL_DEFAULT_NOTE,
    ),
    api_key: Optional[str] = _option(
        "api_key",
        "--api-key",
        metavar="KEY",
        help="API key; prefer OPENAI_API_KEY (never written anywhere).",
        note="$OPENAI_API_KEY",
    ),
    samples: int = _option("samples", "--samples", help="Descriptions per class."),
    temperature: Optional[float] = _option(
        "temperature",
        "--temperature",
        help=f"Sampling temperature, {TEMPERATURE_RANGE[0]:g}-{TEMPERATURE_RANGE[1]:g}.",
        note=f"{DEFAULT_LLM_TEMPERATURE:g}",
    ),
    seed: Optional[int] = _option(
        "seed", "--seed", help="LLM seed (sample i: seed+i).", note="none"
    ),
    concurrency: int = _option("concurrency", "--concurrency", help="Requests in flight."),
    timeout: float = _option("timeout", "--timeout", help="Seconds per request."),
    max_retries: int = _option(
        "max_retries", "--max-retries", help="Retries on 429, 5xx and timeouts (backoff)."
    ),
    output: Optional[Path] = _option(
        "output",
        "--output",
        "-o",
        help="A .json file, or a folder of <prompt>.json.",
        note="descriptions/<dataset>/<prompt>.json",
    ),
    out_alias: Optional[Path] = typer.Option(
        None, "--out", hidden=True, help="Old spelling of --output."
    ),
    force: bool = _option("force", "--force", help="Regenerate, replacing textclf's own file."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Write class descriptions."""
    if ctx.invoked_subcommand is not None:  # `textclf describe show FILE`
        return

    request = DescribeRequest(
        dataset=dataset,
        prompt_type=prompt_type,
        prompt_template=prompt_template,
        describer=describer,
        output=merge_alias(output, out_alias, "--output", "--out"),
        samples=samples,
        model=model,
        base_url=base_url,
        temperature=temperature,
        seed=seed,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        force=force,
        api_key=api_key,
    )
    runs, why = plan(request)
    if why:
        note(why)
    summaries = [_describe_one(opts, json_out) for opts in runs]
    if json_out:
        _print_json(dataset, summaries)
    else:
        for summary in summaries:
            _print_table(dataset, *summary)


def _describe_one(opts, json_out: bool) -> tuple:
    """Run one prompt's requests with a progress bar; ``(prompt, result, the file as
    validated)``."""

    # Bars vanish on an error, so the error line stands alone.
    with reporter(enabled=not json_out, transient_on_error=True) as progress:

        def on_event(ev, label=f"{opts.dataset} {opts.prompt.name}"):
            if ev.kind == "plan" and ev.total:
                progress.task("describe", ev.total, label)
            elif ev.kind == "done":
                progress.advance("describe", 1)
            elif ev.kind == "retry":
                progress.message(
                    f"retry {ev.attempt} for '{ev.class_name}' in {ev.delay:.1f} s: {ev.reason}"
                )
            elif ev.kind == "finished":
                progress.done("describe")

        result = run_describe(opts, on_event)
    if result.samples < opts.samples:
        note(
            f"describer '{opts.describer}' has {result.samples} text per class and prompt: "
            f"--samples {opts.samples} "
            f"gives {result.samples}"
        )
    return opts.prompt, result, load_descriptions(result.path, opts.class_names)


def _print_json(dataset: str, summaries: list) -> None:

    print_json(
        {
            "files": [
                {
                    "path": str(r.path),
                    "dataset": dataset,
                    "prompt": p.name,
                    "prompt_text": f.prompt_text,
                    "describer": f.describer,
                    "model": f.model,
                    "base_url": f.base_url,
                    "classes": len(f.class_names),
                    "fetched": r.requests,
                    "kept": sum(r.kept.values()),
                    "seconds": round(r.seconds, 3),
                    "descriptions_hash": descriptions_hash(f.descriptions),
                    "usage": r.usage or None,
                    "usage_total": f.usage,
                }
                for p, r, f in summaries
            ]
        }
    )


def _print_table(dataset: str, prompt, result, checked) -> None:
    from rich.markup import escape
    from rich.table import Table

    with_tokens = "total_tokens" in result.usage  # servers that report no usage get no column
    if is_quiet():  # -q: the summary line alone
        with_tokens = False
    table = Table(title=escape(f"{dataset} / {prompt.name}"), title_justify="left")
    table.add_column("class", overflow="fold")
    table.add_column("words", justify="right")
    if with_tokens:
        table.add_column("tokens", justify="right")
    table.add_column("source", overflow="fold")
    for c in checked.class_names:
        cells = [escape(c), _words(checked.descriptions[c])]
        if with_tokens:
            cells.append(_tokens(result.usage_by_class.get(c)))
        cells.append(
            escape(_source(result.source_label, result.kept.get(c, 0), result.fetched.get(c, 0)))
        )
        table.add_row(*cells)
    if not is_quiet():
        console.print(table)
    if with_tokens:  # a line of its own: a caption would wrap in the narrow table
        u = result.usage
        console.print(
            f"tokens this run: {u.get('prompt_tokens', 0):,} prompt + "
            f"{u.get('completion_tokens', 0):,} "
            f"completion = {u.get('total_tokens', 0):,} in {u.get('requests', 0)} requests",
            highlight=False,
            markup=False,
        )
    if result.requests:
        console.print(
            f"wrote {result.path} ({result.requests} new, {sum(result.kept.values())} kept)",
            highlight=False,
            markup=False,
        )
    else:
        console.print(
            f"{result.path} is already complete (use --force to regenerate)",
            highlight=False,
            markup=False,
        )


def _tokens(usage) -> str:
    return f"{usage['total_tokens']:,}" if usage and "total_tokens" in usage else "-"


@app.command(
    "show",
    help="Print the texts of a description file as a table (class, text), with its "
    "provenance.\n\nExample: textclf describe show descriptions/digits/type1.json",
)
@handle_errors
def show(
    file: Path = typer.Argument(
        ..., metavar="FILE", help="A description file (textclf describe writes them)."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the file's provenance and texts as JSON."
    ),
) -> None:
    """Show a description file."""
    from rich.markup import escape
    from rich.table import Table

    f = load_descriptions(file, partial=True)
    if json_out:
        print_json(f.to_json())
        return
    made_by = " ".join(x for x in (f.describer, f.model, f.base_url) if x)
    # On its own line: a path is never split in a title
    console.print(escape(str(file)), highlight=False)
    table = Table(
        title=escape(f"{f.dataset} / {f.prompt_name}"), title_justify="left", show_lines=True
    )
    table.add_column("class", overflow="fold", ratio=1)
    table.add_column("text", overflow="fold", ratio=4)
    several = any(len(t) > 1 for t in f.descriptions.values())
    for c in f.class_names:
        for i, text in enumerate(f.descriptions.get(c, [])):
            label = f"{c} ({i + 1})" if several else c
            table.add_row(escape(label), escape(text))
    lines = [
        f"prompt: {f.prompt_text}"
        if f.prompt_text is not None
        else "prompt: none (texts from a file)",
        f"by: {made_by} (textclf {f.textclf_version}, {f.updated_at})",
    ]
    if f.usage:
        lines.append(
            f"tokens: {f.usage.get('total_tokens', 0):,} in {f.usage.get('requests', 0)} requests"
        )
    missing = f.missing_classes()
    if missing:
        lines.append(
            f"incomplete: {len(missing)} classes not described yet ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''})"
        )
    console.print(table)
    for line in lines:  # under the table, not as its caption: a narrow table would wrap them
        console.print(line, highlight=False, markup=False)
