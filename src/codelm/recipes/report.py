"""The run report (markdown + HTML): data funnel, loss curves, evaluation before/after, samples.

Everything shown is read back from the run directory's files (curation stats, training metrics,
the `codelm eval` outputs under eval/before and eval/after), so the report can be regenerated and
never disagrees with the artifacts; its evaluation figures are `codelm eval`'s own.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

METRICS = [
    ("humaneval_pass@1", "HumanEval pass@1 (greedy)", "{:.3f}"),
    ("syntax_valid", "syntactically valid HumanEval completions", "{:.1%}"),
    ("fim_exact_match", "single-line FIM exact match", "{:.1%}"),
    ("perplexity", "held-out perplexity", "{:.1f}"),
    ("unigram_perplexity", "unigram baseline perplexity", "{:.1f}"),
]


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _fmt(value: Any, spec: str) -> str:
    return "not run" if value is None else spec.format(value)


def loss_plot(ctx, out: Path) -> Path | None:
    """All stages' loss curves on one step axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    offset, drew = 0, False
    for stage in ctx.recipe.stages:
        path = ctx.path("stages", stage.name, "metrics.jsonl")
        if not path.is_file():
            continue
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        steps = [offset + r["step"] for r in rows if "loss" in r]
        ax.plot(steps, [r["loss"] for r in rows if "loss" in r], label=f"{stage.name} ({stage.kind})")
        offset = steps[-1] if steps else offset
        drew = True
    if not drew:
        plt.close(fig)
        return None
    ax.set_xlabel("optimizer step (stages one after another)")
    ax.set_ylabel("training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _samples(path: Path, task: str, count: int) -> list[dict[str, Any]]:
    """The first `count` samples of `task` in a `codelm eval` samples.jsonl."""
    if not path.is_file():
        return []
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [r for r in rows if r["task"] == task][:count]


def write_report(ctx) -> list[Path]:
    from codelm.recipes.runner import headline

    before = headline(_json(ctx.path("eval", "before", "summary.json")))
    after = headline(_json(ctx.path("eval", "after", "summary.json")))
    stats = _json(ctx.path("data", "stats.json"))
    plot = loss_plot(ctx, ctx.path("loss.png"))
    md = [f"# {ctx.recipe.name}: run report", "", ctx.recipe.description, ""]
    md += ["## Data funnel", "", "| step | in | kept | dropped |", "|---|---|---|---|"]
    for s in stats.get("steps") or []:
        dropped = ", ".join(f"{k}={v}" for k, v in (s.get("dropped") or {}).items()) or "-"
        md.append(f"| {s.get('name')} | {s.get('docs_in', '')} | {s.get('kept', '')} | {dropped} |")
    md += ["", "## Training", ""]
    for stage in ctx.recipe.stages:
        done = _json(ctx.path("done", f"stage-{stage.name}.json"))
        if done:
            md.append(
                f"- **{stage.name}** ({stage.kind}): {done.get('steps')} steps, loss "
                f"{done.get('first_loss', 0):.3f} -> {done.get('last_loss', 0):.3f}, {done.get('seconds')} s"
            )
    if plot:
        md += ["", "![loss curves](loss.png)"]
    md += ["", "## Evaluation", "", "| metric | before training | after training |", "|---|---|---|"]
    for key, label, spec in METRICS:
        md.append(f"| {label} | {_fmt(before.get(key), spec)} | {_fmt(after.get(key), spec)} |")
    n = after.get("humaneval_problems")
    md += [
        "",
        f"HumanEval on {n} problems; FIM on {after.get('fim_problems')} single-line infilling problems; "
        f"perplexity on {after.get('heldout_tokens')} held-out tokens. Computed by `codelm eval` "
        "(eval/before and eval/after hold its summary.json, samples.jsonl and report.md).",
    ]
    md += ["", "## Sample completions (after training)", ""]
    for s in _samples(ctx.path("eval", "after", "samples.jsonl"), "humaneval", 3):
        md += ["```python", s["prompt"][-300:] + s["completion"], "```", ""]
    md += [
        "## Serve it",
        "",
        "```",
        _serve_line(ctx),
        "```",
        "",
    ]
    text = "\n".join(md)
    md_path = ctx.path("report.md")
    md_path.write_text(text)
    html_path = ctx.path("report.html")
    html_path.write_text(_html(ctx.recipe.name, text))
    return [md_path, html_path]


def _serve_line(ctx) -> str:
    import dataclasses

    final = ctx.path("stages", ctx.recipe.stages[-1].name, "final")
    return dataclasses.replace(ctx.recipe.serve, model=str(final)).command()


def _html(title: str, markdown: str) -> str:
    """A dependency-free rendering: tables, headings, code blocks and the plot."""
    out, in_code, in_table = [], False, False
    for line in markdown.splitlines():
        if line.startswith("```"):
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("!["):
            out.append(f'<img src="{html.escape(line[line.index("(") + 1 : -1])}" alt="loss curves">')
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}td{border:1px solid #ccc;padding:.2em}"
    )
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(out)}</body></html>\n"
