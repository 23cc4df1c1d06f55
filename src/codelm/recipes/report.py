"""The run report: `report.json` holds every figure, `report.md` and `report.html` render it.

Everything is read back from the run directory's files (the steps' done markers, curation stats,
each stage's metrics.jsonl, the `codelm eval` outputs under eval/<checkpoint>/), so the report can
be regenerated and never disagrees with the artifacts; its evaluation figures are `codelm eval`'s.

`report.json`:

    {"recipe", "date", "machine", "total_seconds", "steps": {step: seconds},
     "checkpoints": {"before": {metrics}, "<stage>": {...}, "after": {...}},   # after = final model
     "stages": {name: {kind, steps, first_loss, last_loss, first_heldout_loss, heldout_loss, tokens_per_s,
                     mfu, seconds}},
     "data": [funnel rows], "samples": {checkpoint: [...]}, "infills": {checkpoint: [...]}, "serve"}

Each checkpoint's metrics hold at least `perplexity`, `unigram_perplexity`, `fim_exact_match`,
`syntax_valid` and `humaneval_pass@1` (None where a task did not run).
"""

from __future__ import annotations

import html
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from codelm.jsonl import read_records

METRICS = [
    ("humaneval_pass@1", "HumanEval pass@1 (greedy)", "{:.3f}"),
    ("syntax_valid", "HumanEval completions that compile", "{:.1%}"),
    ("fim_exact_match", "single-line FIM exact match", "{:.1%}"),
    ("fim_bits_per_byte", "single-line FIM loss, bits per byte of the removed line", "{:.3f}"),
    ("perplexity", "held-out perplexity", "{:.1f}"),
    ("unigram_perplexity", "unigram baseline perplexity", "{:.1f}"),
    ("perplexity_ratio", "perplexity / unigram baseline", "{:.1%}"),
    ("bits_per_byte", "held-out bits per byte (unigram: next row)", "{:.3f}"),
    ("unigram_bits_per_byte", "unigram baseline bits per byte", "{:.3f}"),
    ("docstring_pass@1", "docstring -> function: passes its doctest", "{:.1%}"),
    ("docstring_syntax_valid", "docstring -> function: compiles", "{:.1%}"),
    ("preference_accuracy", "held-out preference accuracy", "{:.1%}"),
    ("preference_margin", "held-out preference margin (nats)", "{:+.3f}"),
]


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return read_records(path) if path.is_file() else []


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def machine() -> str:
    """CPU model and core count (GPU name when there is one): where the figures were measured."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import os

    return f"{model}, {os.cpu_count()} CPUs"


def _chat(ctx, label: str) -> dict[str, Any]:
    """The summary of the checkpoint's chat-mode evaluation (the recipe's `eval_chat`), if any."""
    return _json(ctx.path("eval", f"{label}-chat", "summary.json"))


def metrics_of(summary: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's report figures from its `codelm eval` summary."""
    from codelm.recipes.runner import headline

    out = headline(summary)
    if out.get("perplexity") and out.get("unigram_perplexity"):
        out["perplexity_ratio"] = out["perplexity"] / out["unigram_perplexity"]
    doc, pref = summary.get("docstring-to-function") or {}, summary.get("preference") or {}
    out["docstring_pass@1"], out["docstring_syntax_valid"] = doc.get("pass@1"), doc.get("syntax_valid")
    out["preference_accuracy"], out["preference_margin"] = pref.get("accuracy"), pref.get("margin")
    return out


def stage_figures(ctx, stage) -> dict[str, Any]:
    from codelm.recipes.runner import marker_path

    done = _json(marker_path(ctx, f"stage:{stage.name}"))
    rows = _jsonl(ctx.path("stages", stage.name, "metrics.jsonl"))
    losses = [r["loss"] for r in rows if "loss" in r]
    heldout = [r["heldout_loss"] for r in rows if r.get("heldout_loss") is not None]
    speeds = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
    mfus = [r["mfu"] for r in rows if r.get("mfu") is not None]
    rewards = [r["heldout_reward_accuracy"] for r in rows if r.get("heldout_reward_accuracy") is not None]
    extra = {}
    if rewards:  # DPO: the held-out pairs' reward accuracy, first and last
        extra["heldout_reward_accuracy"] = [rewards[0], rewards[-1]]
    if stage.self_play:  # what the self-play step asked and made (runner.step_self_play)
        extra["self_play"] = _json(marker_path(ctx, f"self-play:{stage.name}"))
    return extra | {
        "kind": stage.kind,
        "steps": done.get("steps"),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "first_heldout_loss": heldout[0] if heldout else None,
        "heldout_loss": heldout[-1] if heldout else None,
        "tokens_per_s": statistics.median(speeds) if speeds else None,
        "mfu": statistics.median(mfus) if mfus else None,
        "seconds": done.get("seconds"),
    }


def _references(task: str, ids: list[str], data_dir: Path | None) -> dict[str, str]:
    """Canonical solutions (HumanEval) or middles (infilling) of `ids`, from the bundled data."""
    from codelm.eval.tasks import get_task
    from codelm.eval.tasks.data import resolve_source

    if not ids:
        return {}
    name = {"humaneval": "humaneval", "fim-exact-match": "humaneval-infilling-single-line"}[task]
    t = get_task(name)
    wanted = set(ids)
    source = resolve_source(t, data_dir)  # where the run's evaluation read them from
    return {p.task_id: t.reference(p) for p in t.load(source) if p.task_id in wanted}


def samples(ctx, label: str, task: str, count: int = 5) -> list[dict[str, Any]]:
    """The first `count` samples of `task` at checkpoint `label`: prompt, output, reference."""
    rows = [r for r in _jsonl(ctx.path("eval", label, "samples.jsonl")) if r["task"] == task][:count]
    try:
        refs = _references(task, [r["task_id"] for r in rows], ctx.recipe.eval.data_dir or ctx.data_dir)
    except Exception as exc:  # a report is still written when the benchmark file cannot be read
        refs = {}
        for r in rows:
            r["error"] = f"no reference: {exc}"
    return [
        {
            "task_id": r["task_id"],
            "prompt": r["prompt"],
            **({"suffix": r["suffix"]} if "suffix" in r else {}),
            "output": r["completion"],
            "reference": refs.get(r["task_id"]),
            "status": r.get("status"),
        }
        for r in rows
    ]


def _funnel(ctx, stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Every curation's steps: the main corpus, then each other source's as `source: step`."""
    from codelm.recipes.runner import curated_sources, source_dir

    rows = [{k: s.get(k) for k in ("name", "docs_in", "kept", "dropped")} for s in stats.get("steps") or []]
    for source in curated_sources(ctx):
        for s in _json(source_dir(ctx, source.name) / "stats.json").get("steps") or []:
            row = {k: s.get(k) for k in ("docs_in", "kept", "dropped")}
            rows.append({"name": f"{source.name}: {s.get('name')}", **row})
    return rows


def build_report(ctx) -> dict[str, Any]:
    from codelm.recipes.runner import checkpoints, marker_path, serve_line, step_names

    steps = {n: _json(marker_path(ctx, n)).get("seconds") for n in step_names(ctx.recipe)}
    labels = checkpoints(ctx.recipe)
    stats = _json(ctx.path("data", "stats.json"))
    return {
        "recipe": ctx.recipe.name,
        "scale": ctx.scale,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "total_seconds": round(sum(v for v in steps.values() if v), 1),
        "steps": steps,
        "checkpoints": {
            label: metrics_of(_json(ctx.path("eval", label, "summary.json")) | _chat(ctx, label))
            for label in labels
        },
        "stages": {s.name: stage_figures(ctx, s) for s in ctx.recipe.stages},
        "data": _funnel(ctx, stats),
        "samples": {label: samples(ctx, label, "humaneval") for label in (labels[0], labels[-1])},
        "infills": {label: samples(ctx, label, "fim-exact-match") for label in (labels[0], labels[-1])},
        "serve": serve_line(ctx),
    }


def loss_plot(ctx, out: Path) -> Path | None:
    """All stages' training (and held-out) loss on one step axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    offset, drew = 0, False
    for stage in ctx.recipe.stages:
        rows = _jsonl(ctx.path("stages", stage.name, "metrics.jsonl"))
        steps = [offset + r["step"] for r in rows if "loss" in r]
        if not steps:
            continue
        ax.plot(steps, [r["loss"] for r in rows if "loss" in r], label=f"{stage.name} ({stage.kind})")
        held = [(offset + r["step"], r["heldout_loss"]) for r in rows if r.get("heldout_loss") is not None]
        if held:
            ax.plot(*zip(*held, strict=True), "k--", marker="o", ms=3, label=f"{stage.name} held-out")
        offset = steps[-1]
        drew = True
    if not drew:
        plt.close(fig)
        return None
    ax.set_xlabel("optimizer step (stages one after another)")
    ax.set_ylabel("loss (nats per token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def render_markdown(report: dict[str, Any], description: str, plot: bool) -> str:
    labels = list(report["checkpoints"])
    md = [f"# {report['recipe']}: run report", "", description, ""]
    md.append(
        f"Run of {report['date']} on {report['machine']}"
        + (f" at scale {report['scale']}" if report.get("scale") else "")
        + f": {report['total_seconds'] / 60:.1f} minutes in all."
    )
    md += ["", "## Evaluation (through `codelm eval`)", ""]
    md += ["| metric | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for key, label, spec in METRICS:
        values = [report["checkpoints"][c].get(key) for c in labels]
        if any(v is not None for v in values):
            md.append(f"| {label} | " + " | ".join(_fmt(v, spec) for v in values) + " |")
    after = report["checkpoints"][labels[-1]]
    md += [
        "",
        f"HumanEval: {after.get('humaneval_problems')} problems; FIM: {after.get('fim_problems')}"
        f" single-line infilling problems; perplexity: {after.get('heldout_tokens')} held-out tokens."
        " Each checkpoint's summary.json, samples.jsonl and report.md are under eval/<checkpoint>/.",
    ]
    md += [
        "",
        "## Training",
        "",
        "| stage | kind | steps | loss first -> last | held-out loss first -> last | tokens/s | MFU | time |",
    ]
    md.append("|---|---|---|---|---|---|---|---|")
    for name, s in report["stages"].items():
        loss = f"{_fmt(s['first_loss'], '{:.3f}')} -> {_fmt(s['last_loss'], '{:.3f}')}"
        cells = [
            name,
            s["kind"],
            _fmt(s["steps"], "{}"),
            loss,
            f"{_fmt(s.get('first_heldout_loss'), '{:.3f}')} -> {_fmt(s['heldout_loss'], '{:.3f}')}",
            _fmt(s["tokens_per_s"], "{:,.0f}"),
            _fmt(s["mfu"], "{:.1%}"),
            _fmt(s["seconds"], "{:.0f} s"),
        ]
        md.append("| " + " | ".join(cells) + " |")
    for name, s in report["stages"].items():
        made = s.get("self_play")
        if made:
            md += [
                "",
                f"Self-play pairs of `{name}`: the model it starts from infilled one line of "
                f"{made.get('problems')} function documents, {_fmt(made.get('exact_match'), '{:.1%}')} "
                f"exactly; the lines it got wrong gave {made.get('pairs')} pairs (written line over its own) "
                f"and {made.get('heldout_pairs')} held out.",
            ]
        accuracy = s.get("heldout_reward_accuracy")
        if accuracy:
            md += ["", f"`{name}` held-out reward accuracy: {accuracy[0]:.0%} -> {accuracy[1]:.0%}."]
    if plot:
        md += ["", "![loss curves](loss.png)"]
    md += ["", "## Data funnel", "", "| step | in | kept | dropped |", "|---|---|---|---|"]
    for s in report["data"]:
        dropped = ", ".join(f"{k}={v}" for k, v in (s.get("dropped") or {}).items()) or "-"
        md.append(f"| {s.get('name')} | {s.get('docs_in', '')} | {s.get('kept', '')} | {dropped} |")
    md += ["", "## Step times", "", "| step | seconds |", "|---|---|"]
    md += [f"| {name} | {_fmt(sec, '{:.1f}')} |" for name, sec in report["steps"].items()]
    for kind, title in (("samples", "Sample completions (HumanEval)"), ("infills", "Sample infills")):
        for label, rows in report[kind].items():
            if not rows:
                continue
            md += ["", f"## {title}: {label}", ""]
            for r in rows:
                md.append(f"**{r['task_id']}** ({r.get('status')})")
                md += [
                    "",
                    "```python",
                    r["prompt"][-300:] + "⟨" + r["output"] + "⟩" + r.get("suffix", "")[:200],
                ]
                md += ["```", "", "reference:", "", "```python", (r.get("reference") or "")[:400], "```", ""]
    md += ["## Serve it", "", "```", report["serve"], "```", ""]
    return "\n".join(md)


def write_report(ctx) -> list[Path]:
    report = build_report(ctx)
    json_path = ctx.path("report.json")
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    plot = loss_plot(ctx, ctx.path("loss.png"))
    text = render_markdown(report, ctx.recipe.description, plot is not None)
    md_path = ctx.path("report.md")
    md_path.write_text(text)
    html_path = ctx.path("report.html")
    html_path.write_text(_html(ctx.recipe.name, text))
    return [json_path, md_path, html_path]


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
