"""The Markdown tables of benchmarks/real_data.py (one per journey), from its JSON document."""

from __future__ import annotations


def _pct(d) -> str:
    if not d or d.get("mean") is None:
        return "-"
    return f"{100 * d['mean']:.1f} ± {100 * d['std']:.1f}"


def _pp(d) -> str:
    if not d or d.get("mean") is None:
        return "-"
    if d.get("low") is None:
        return f"{100 * d['mean']:+.1f}"
    return f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def closed_table(results: dict) -> str:
    """Closed set: accuracy with descriptions and without text, and the image size."""
    rows = []
    for name, r in results.items():
        c = r.get("closed")
        if not c:
            continue
        s = c["settings"]
        rows.append(
            [
                f"{name} ({r['role']})",
                f"{s['n_train'] + s['n_val']} / {c['n_test']}",
                f"{s['image_size']}",
                _pct(c["accuracy"]["text"]),
                _pct(c["accuracy"]["no-text"]),
                _pp(c["text_vs_no_text"]),
                _pct(c["accuracy"].get("text@96px")) if "text@96px" in c["accuracy"] else "-",
                _pp(c.get("auto_vs_96px")),
            ]
        )
    headers = [
        "dataset",
        "train / test",
        "size (auto)",
        "descriptions %",
        "no text %",
        "Δ text, pts [95% CI]",
        "at 96 px %",
        "Δ auto vs 96 px",
    ]
    return _table(headers, rows)


def pairs_table(results: dict) -> str:
    """Held-out pairs: descriptions against class names; hubness and its corrections."""
    rows = []
    for name, r in results.items():
        p = r.get("pairs")
        if not p:
            continue
        d, c = p["settings"]["descriptions"], p["settings"]["classname"]
        rows.append(
            [
                f"{name} ({r['role']})",
                str(d["unseen"]["n"]),
                _pct(d["unseen"]),
                _pct(c["unseen"]),
                _pp(p["descriptions_vs_classname"]),
                _pct(d["hub_share"]),
                _pp(d["centred_vs_raw"]),
                _pp(d["standardised_vs_raw"]),
                _pp(d.get("images_centred_vs_raw")),
                _pct(d["H"]),
            ]
        )
    headers = [
        "dataset",
        "n",
        "descriptions unseen %",
        "class names %",
        "Δ, pts [95% CI]",
        "hub share %",
        "centred Δ",
        "standardised Δ",
        "images centred Δ",
        "H %",
    ]
    text = _table(headers, rows)
    for name, r in results.items():
        if r.get("pairs"):
            per = "; ".join(
                f"{' + '.join(x['pair'])} {100 * x['descriptions']:.0f} / "
                f"{100 * x['classname']:.0f}"
                for x in r["pairs"]["per_pair"]
            )
            text += f"\n{name}, per pair (descriptions / class names, %): {per}."
    return text + "\n"


def add_table(results: dict) -> str:
    """classes add then predict: trained-class accuracy before and after, new-class recall."""
    rows = []
    for name, r in results.items():
        a = r.get("add")
        if not a:
            continue
        rows.append(
            [
                f"{name} ({r['role']})",
                ", ".join(a["classes"]),
                str(a["after"]["n"]),
                _pct(a["before"]),
                _pct(a["after"]),
                _pp(a["drop"]),
                _pct(a["recall"]),
                f"{a['budget_met']}/{a['after']['n']}",
                f"{_pct(a['old_after'])} / {_pct(a['old_recall'])}",
            ]
        )
    headers = [
        "dataset",
        "added",
        "n",
        "trained, before %",
        "trained, after %",
        "drop, pts [95% CI]",
        "new-class recall %",
        "budget met",
        "before issue 34: trained / recall %",
    ]
    text = _table(headers, rows)
    for name, r in results.items():
        a = r.get("add")
        if not a:
            continue
        per = "; ".join(
            f"{x['class']} s{x['seed']} {100 * x['before']:.1f} -> {100 * x['after']:.1f}, "
            f"recall {100 * x['recall']:.0f} (gamma {x['calibration']['gamma']:.2f})"
            for x in a["rows"]
        )
        check = next((x["predict"] for x in a["rows"] if "predict" in x), None)
        agrees = (
            ""
            if check is None
            else (
                " predict on the test files: the same figures."
                if check["agrees"]
                else f" predict on the test files: {check}, NOT the evaluated figures."
            )
        )
        text += f"\n{name}: {per}.{agrees}"
    return text + "\n"


def markdown(doc: dict) -> str:
    """Every table of the benchmark, with its heading."""
    results = doc["results"]
    parts = [
        f"Real-data benchmark: {doc['seconds']} s on {doc['cpus']} CPUs "
        f"(load average {doc['load_average'][0]}).\n",
        "### Closed set\n\n" + closed_table(results),
        "### Held-out pairs\n\n" + pairs_table(results),
        "### classes add, then predict\n\n" + add_table(results),
    ]
    return "\n".join(parts)
