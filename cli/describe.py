"""``textclf describe``: write class descriptions (one JSON per dataset and prompt, with provenance)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from textclf.cli._common import console, err_console, handle_errors, print_json

HELP = (
    "Write class descriptions for a dataset: one JSON per prompt type, with provenance, in "
    "descriptions/<dataset>/<prompt>.json. Describers: openai (key from OPENAI_API_KEY; "
    "--base-url for any OpenAI-compatible server such as vLLM or Ollama), builtin (shipped, "
    "offline: digits, fashion-mnist, cifar10), classname, random-words, file:PATH (JSON or CSV). "
    "A rerun fetches only what is missing; --force starts over.\n\n"
    "Example: textclf describe --dataset cifar10 --prompt-type all --describer builtin"
)


def _out_path(out: Optional[Path], dataset: str, prompt_name: str, n_prompts: int) -> Path:
    from textclf.descriptions import default_path, safe_name
    from textclf.errors import TextclfError

    if out is None:
        return default_path(dataset, prompt_name)
    if out.suffix.lower() == ".json":
        if n_prompts > 1:
            raise TextclfError(f"--out {out} names one file but {n_prompts} prompts are described; "
                               f"give a folder instead")
        return out
    return out / f"{safe_name(prompt_name)}.json"


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


@handle_errors
def command(
    dataset: str = typer.Option("digits", "--dataset", "-d",
                                help="Dataset whose classes to describe (digits, fashion-mnist, cifar10, "
                                     "imagefolder:PATH, ...)."),
    prompt_type: Optional[str] = typer.Option(None, "--prompt-type", "-p",
                                              help="1|2|3|4|all, or a prompt name such as type3 "
                                                   "(default: 1)."),
    prompt_template: Optional[str] = typer.Option(None, "--prompt-template",
                                                  help="A custom prompt containing {class_name}, e.g. "
                                                       "'Describe the shape of a {class_name}.'"),
    describer: Optional[str] = typer.Option(None, "--describer",
                                            help="openai|builtin|classname|random-words|file:PATH "
                                                 "(default: openai when OPENAI_API_KEY is set, else builtin)."),
    model: Optional[str] = typer.Option(None, "--model",
                                        help="Chat model (default: $TEXTCLF_LLM_MODEL or gpt-4o-mini)."),
    base_url: Optional[str] = typer.Option(None, "--base-url",
                                           help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 "
                                                "(vLLM) or http://localhost:11434/v1 (Ollama)."),
    samples: int = typer.Option(1, "--samples", min=1, help="Descriptions per class."),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, max=2.0,
                                                help="Sampling temperature (default: 0.7)."),
    seed: Optional[int] = typer.Option(None, "--seed",
                                       help="Seed sent to the LLM (sample i uses seed+i); random-words' seed."),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="Requests in flight."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds per request."),
    max_retries: int = typer.Option(5, "--max-retries", min=0,
                                    help="Retries per request on 429, 5xx, timeouts (exponential backoff)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Output .json file, or a folder for <prompt>.json files "
                                            "(default: descriptions/<dataset>/<prompt>.json)."),
    force: bool = typer.Option(False, "--force", help="Regenerate everything, replacing an existing file."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Write class descriptions."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from textclf.describe import (DescribeOptions, dataset_class_names, default_describer, prompts_for,
                                  run_describe)
    from textclf.descriptions import descriptions_hash, load_descriptions

    prompts = prompts_for(prompt_type, prompt_template)
    class_names = dataset_class_names(dataset)
    if describer is None and (base_url or model):
        describer = "openai"  # --base-url/--model only make sense for an LLM; say so if no key
    if describer is None:
        describer, note = default_describer(dataset, [p.name for p in prompts])
        if note:
            err_console.print(f"[cyan]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    paths = [_out_path(out, dataset, p.name, len(prompts)) for p in prompts]

    summaries = []
    for prompt, path in zip(prompts, paths):
        # The bar starts when the plan is known, so a describer that fails to start shows none.
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err_console, transient=False)
        task = progress.add_task(escape(f"{dataset} {prompt.name}"), total=None)
        try:
            def on_event(ev, progress=progress, task=task):
                if ev.kind == "plan":
                    progress.update(task, total=ev.total)
                    if ev.total:
                        progress.start()
                elif ev.kind == "done":
                    progress.advance(task)
                elif ev.kind == "retry":
                    progress.console.print(
                        f"[yellow]retry {ev.attempt}[/] for '{escape(str(ev.class_name))}' in "
                        f"{ev.delay:.1f} s: {escape(ev.reason)}",
                        highlight=False)

            opts = DescribeOptions(dataset=dataset, class_names=class_names, prompt=prompt,
                                   describer=describer, out=path, samples=samples, model=model,
                                   base_url=base_url, temperature=temperature, seed=seed,
                                   concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                                   force=force)
            result = run_describe(opts, on_event)
        except BaseException:
            progress.live.transient = True  # the error line alone, no half-filled bar
            raise
        finally:
            progress.stop()
        checked = load_descriptions(result.path, class_names)
        summaries.append((prompt, result, checked))

    if json_out:
        print_json({"files": [{
            "path": str(r.path), "dataset": dataset, "prompt": p.name, "prompt_text": p.text,
            "describer": f.describer, "model": f.model, "base_url": f.base_url,
            "classes": len(class_names), "fetched": r.requests, "kept": sum(r.kept.values()),
            "seconds": round(r.seconds, 3), "descriptions_hash": descriptions_hash(f.descriptions),
        } for p, r, f in summaries]})
        return
    for prompt, result, checked in summaries:
        table = Table(title=escape(f"{dataset} / {prompt.name}: {result.path}"), title_justify="left")
        table.add_column("class")
        table.add_column("words", justify="right")
        table.add_column("source")
        for c in class_names:
            table.add_row(escape(c), _words(checked.descriptions[c]),
                          escape(_source(result.source_label, result.kept.get(c, 0), result.fetched.get(c, 0))))
        console.print(table)
        if result.requests:
            console.print(f"wrote {result.path} ({result.requests} new, "
                          f"{sum(result.kept.values())} kept)", highlight=False, markup=False)
        else:
            console.print(f"{result.path} is already complete (use --force to regenerate)",
                          highlight=False, markup=False)
