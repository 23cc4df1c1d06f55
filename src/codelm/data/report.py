"""The report of a curation run: what each step did, why documents went, what is left.

`write_report(out_dir)` reads OUT/stats.json (written by the executor) and writes
OUT/report.md, OUT/report.html and PNG plots under OUT/plots/ (matplotlib, Agg backend, so no
display is needed):

* funnel.png     documents after each step;
* reasons.png    the most frequent drop reasons, labelled `step: reason`;
* languages.png  documents per language, input (readers' output) and output;
* sizes.png      document sizes (bytes, log2 bins), input and output;
* quality.png    quality scores of the output, when a quality step annotated them.

The tables carry the same numbers as stats.json, so the report can be read without the plots.
The "Sources" table is each source's funnel: documents read, dropped while reading and by the
later steps (per reason), kept, output bytes and an estimate of tokens (bytes / 4; the exact
count is in the `index.json` of `codelm data pack`). Readers are the leading steps named
`*_reader` or `*_reader#N` (the first step always is one); with several readers each document carries its
reader's name, so each source gets its own later drops, kept documents, bytes and tokens, and an
"all sources" row adds them up.
Like stats.json, the report holds no wall-clock figure (those are in OUT/timings.json), so
identical runs give identical reports.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from codelm.data.document import DataError
from codelm.data.profile import QUALITY_BINS, SIZE_BINS


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _plots(stats: dict[str, Any], plots: Path) -> list[tuple[str, str]]:
    try:
        import matplotlib
    except ImportError as e:
        raise DataError(
            "report plots need matplotlib: pip install 'codelm[data]' (or set report: false)"
        ) from e

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str]] = []
    steps = stats["steps"]
    profile = stats.get("profile", {})

    def save(fig: Any, name: str, title: str) -> None:
        fig.tight_layout()
        fig.savefig(plots / name, dpi=100)
        plt.close(fig)
        made.append((f"plots/{name}", title))

    fig, ax = plt.subplots(figsize=(8, 0.4 * len(steps) + 1.5))
    names = [s["name"] for s in steps][::-1]
    ax.barh(names, [s["docs_in"] for s in steps][::-1], color="#cccccc", label="in")
    ax.barh(names, [s["kept"] for s in steps][::-1], color="#2b7bba", label="kept")
    ax.set_xlabel("documents")
    ax.legend(loc="lower right")
    save(fig, "funnel.png", "Documents in and kept per step")

    reasons = sorted(
        ((f"{s['name']}: {r}", n) for s in steps for r, n in s["dropped"].items()), key=lambda x: -x[1]
    )[:20]
    if reasons:
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(reasons) + 1.5))
        ax.barh([r for r, _ in reasons][::-1], [n for _, n in reasons][::-1], color="#c0504d")
        ax.set_xlabel("documents dropped")
        save(fig, "reasons.png", "Drop reasons")

    p_in, p_out = profile.get("input", {}), profile.get("output", {})
    langs = sorted(
        set(p_in.get("languages", {})) | set(p_out.get("languages", {})),
        key=lambda lang: -p_in.get("languages", {}).get(lang, 0),
    )[:25]
    if langs:
        fig, ax = plt.subplots(figsize=(9, 4))
        xs = range(len(langs))
        ax.bar(
            [x - 0.2 for x in xs],
            [p_in.get("languages", {}).get(lang, 0) for lang in langs],
            0.4,
            label="input",
            color="#cccccc",
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [p_out.get("languages", {}).get(lang, 0) for lang in langs],
            0.4,
            label="output",
            color="#2b7bba",
        )
        ax.set_xticks(list(xs), langs, rotation=60, ha="right")
        ax.set_ylabel("documents")
        ax.legend()
        save(fig, "languages.png", "Documents per language")

    if p_in.get("docs") or p_out.get("docs"):
        fig, ax = plt.subplots(figsize=(9, 4))
        edges = list(range(SIZE_BINS))
        for prof, label, color in ((p_in, "input", "#cccccc"), (p_out, "output", "#2b7bba")):
            if prof.get("docs"):
                ax.step(edges, prof["size_hist"], where="mid", label=label, color=color, linewidth=2)
        used = [
            i
            for i in edges
            if p_in.get("size_hist", [0] * SIZE_BINS)[i] or p_out.get("size_hist", [0] * SIZE_BINS)[i]
        ]
        ax.set_xlim(min(used) - 1, max(used) + 1)
        ticks = list(range(min(used), max(used) + 1))
        ax.set_xticks(ticks, [_human(2**i) for i in ticks], rotation=60, ha="right")
        ax.set_xlabel("document size (lower edge of a power-of-two bin)")
        ax.set_ylabel("documents")
        ax.legend()
        save(fig, "sizes.png", "Document sizes")

    if sum(p_out.get("quality_hist", [])):
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.bar([i / 2 for i in range(QUALITY_BINS)], p_out["quality_hist"], width=0.45, color="#2b7bba")
        ax.set_xlabel("quality score (0-10)")
        ax.set_ylabel("documents")
        save(fig, "quality.png", "Quality scores of the output")
    return made


def _tables(stats: dict[str, Any]) -> tuple[list[str], list[list[str]], list[list[str]], list[list[str]]]:
    head = ["step", "in", "kept", "dropped", "modified", "drop reasons", "notes"]
    rows = []
    for s in stats["steps"]:
        reasons = ", ".join(f"{r}={n:,}" for r, n in sorted(s["dropped"].items(), key=lambda x: -x[1]))
        # counters: what a step saw but did not drop (skipped cache directories, unchecked languages)
        notes = ", ".join(f"{k}={n:,}" for k, n in sorted(s.get("counters", {}).items()))
        rows.append(
            [
                s["name"],
                f"{s['docs_in']:,}",
                f"{s['kept']:,}",
                f"{sum(s['dropped'].values()):,}",
                f"{sum(s['modified'].values()):,}",
                reasons or "-",
                notes or "-",
            ]
        )
    profile = stats.get("profile", {})
    p_in, p_out = profile.get("input", {}), profile.get("output", {})
    langs = sorted(
        set(p_in.get("languages", {})) | set(p_out.get("languages", {})),
        key=lambda lang: -p_out.get("languages", {}).get(lang, 0),
    )
    lang_rows = [
        [
            lang,
            f"{p_in.get('languages', {}).get(lang, 0):,}",
            f"{p_out.get('languages', {}).get(lang, 0):,}",
            _human(p_out.get("language_bytes", {}).get(lang, 0)),
        ]
        for lang in langs
    ]
    totals = [
        ["documents", f"{p_in.get('docs', 0):,}", f"{p_out.get('docs', 0):,}"],
        ["bytes", _human(p_in.get("bytes", 0)), _human(p_out.get("bytes", 0))],
    ]
    return head, rows, lang_rows, totals


#: a reader's step name; a second reader of the same kind is `jsonl_reader#2`
_READER = re.compile(r"_reader(#\d+)?$")
FUNNEL_HEAD = ["source", "read", "dropped while reading", "dropped later", "kept", "output bytes", "~tokens"]


def _reasons(dropped: dict[str, int]) -> str:
    return ", ".join(f"{r}={n:,}" for r, n in sorted(dropped.items(), key=lambda x: (-x[1], x[0]))) or "-"


def _funnel(stats: dict[str, Any]) -> list[list[str]]:
    """One row per source (reader), plus an "all sources" row when there are several.

    With several readers each document carries its reader's name (`source_reader`), so every
    later drop and the output are counted per source too; a step that makes new documents from
    several (pack_repos) leaves its output unattributed, and the "all sources" row still holds it."""
    steps = stats["steps"]
    n_readers = 1
    while n_readers < len(steps) and _READER.search(steps[n_readers]["name"]):
        n_readers += 1
    later: dict[str, int] = {}
    later_by_source: dict[str, dict[str, int]] = {}
    for s in steps[n_readers:]:
        for r, n in s["dropped"].items():
            later[f"{s['name']}: {r}"] = later.get(f"{s['name']}: {r}", 0) + n
        for key, n in s.get("dropped_by_source", {}).items():
            source, reason = key.split(": ", 1)
            mine = later_by_source.setdefault(source, {})
            mine[f"{s['name']}: {reason}"] = mine.get(f"{s['name']}: {reason}", 0) + n
    out = stats.get("profile", {}).get("output", {})

    def tail(docs: int, size: int, dropped: dict[str, int]) -> list[str]:
        return [_reasons(dropped), f"{docs:,}", _human(size), f"{size // 4:,}"]

    everything = tail(out.get("docs", 0), out.get("bytes", 0), later)
    attributed = n_readers > 1 and bool(out.get("sources") or later_by_source)
    rows, upstream = [], 0
    for s in steps[:n_readers]:
        read = s["docs_in"] - upstream  # a reader passes the earlier readers' documents on
        upstream = s["kept"]
        if n_readers == 1:
            per_source = everything
        elif attributed:
            name = s["name"]
            kept, size = out.get("sources", {}).get(name, 0), out.get("source_bytes", {}).get(name, 0)
            per_source = tail(kept, size, later_by_source.get(name, {}))
        else:  # stats written before documents carried their source
            per_source = [""] * 4
        rows.append([s["name"], f"{read:,}", _reasons(s["dropped"]), *per_source])
    if n_readers > 1:
        total = sum(int(r[1].replace(",", "")) for r in rows)
        rows.append(["all sources", f"{total:,}", "-", *everything])
    return rows


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def write_report(out_dir: str | Path, *, plots: bool = True) -> tuple[Path, Path]:
    """Write report.md and report.html (and plots/) for the run in `out_dir`; returns both paths."""
    out = Path(out_dir)
    try:
        stats = json.loads((out / "stats.json").read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"no readable stats.json in {out}: {e}") from e
    images = _plots(stats, out / "plots") if plots else []
    head, rows, lang_rows, totals = _tables(stats)
    funnel = _funnel(stats)
    title = f"Data curation report: {out.name}"
    meta = (
        f"executor {stats.get('executor')}, {stats.get('shards')} shards, {stats.get('workers')} workers; "
        f"output in `{stats.get('output')}` (wall time: timings.json)"
    )
    md = [
        f"# {title}",
        "",
        meta,
        "",
        "## Sources",
        "",
        _md_table(FUNNEL_HEAD, funnel),
        "",
        "## Steps",
        "",
        _md_table(head, rows),
        "",
        "## Totals",
        "",
        _md_table(["", "input", "output"], totals),
        "",
        "## Languages",
        "",
        _md_table(["language", "input docs", "output docs", "output bytes"], lang_rows),
        "",
    ]
    md += [f"![{t}]({p})\n" for p, t in images]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md), "utf-8")
    figures = "".join(
        f'<figure><img src="{p}" alt="{html.escape(t)}"><figcaption>{html.escape(t)}</figcaption></figure>'
        for p, t in images
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(meta)}</p>
<h2>Sources</h2>{_html_table(FUNNEL_HEAD, funnel)}<h2>Steps</h2>{_html_table(head, rows)}
<h2>Totals</h2>{_html_table(["", "input", "output"], totals)}
<h2>Languages</h2>{_html_table(["language", "input docs", "output docs", "output bytes"], lang_rows)}
<h2>Plots</h2>{figures}</body></html>
"""
    html_path = out / "report.html"
    html_path.write_text(page, "utf-8")
    return md_path, html_path
