"""The outputs of a run, rebuilt from its journals: summary.json, samples.jsonl, report.md, a table.

``summary.json`` maps each task to its metrics (``scoring.task_metrics``: pass@k, interval,
standard error, status counts, n, k, problems, samples), plus where its problems came from, the
problems excluded (with the reason), the calibrated timeouts' range, any canonical solution
that failed here, how its samples were generated (``generation``: n and temperature; the
temperature is null for a samples file, which does not record it), the task's warnings about the
evaluated problems and, for a samples file, its ``coverage`` (problems scored of those selected,
the missing ids); a skipped task maps to ``{"skipped": reason}``. ``samples.jsonl`` has one line
per sample: task, task_id, index, prompt, completion, raw text, status (of the headline check),
passed, error (the reason, for anything but passed), runtime and, for several checks, each
check's verdict. ``report.md`` and the terminal show the same table.

A task that scores texts has no samples: its entry is the task's own ``score_summary``
(perplexity: perplexity, unigram_perplexity, tokens, documents, unigram_fitted_on; preference:
accuracy, margin, pairs, and reward_margin with a reference model; fim-loss: fim_loss,
bits_per_byte, tokens, problems) and its row shows those
instead of pass@k. Tasks that name a candidate source (HumanEval) also get ``syntax_valid``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from .generation import LOGLIKELIHOOD, GenSettings
from .scoring import GENERATION_ERROR, NOT_EXECUTED, check_metrics, syntax_valid, task_metrics
from .store import RunStore

_COLUMNS = ("passed", "failed", "timeout", "syntax_error", "error", "generation_error")
# metrics besides pass@k, with their column headers
_OTHERS = {
    "syntax_valid": "syntax ok",
    "perplexity": "ppl",
    "unigram_perplexity": "unigram ppl",
    "bits_per_byte": "bits/byte",
    "accuracy": "pref acc",
    "margin": "logp margin",
    "reward_margin": "reward margin",
}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}" if value < 10 else f"{value:.2f}"


def collect(plan: Any, store: RunStore, settings: GenSettings) -> tuple[dict[str, list], list[dict]]:
    """Per check, ``(task_id, status)`` of every sample; and the samples.jsonl records."""
    task, name = plan.task, plan.task.name
    verdicts: dict[str, list] = {check: [] for check in task.checks}
    records = []
    for problem in plan.problems:
        samples = store.generations.get((name, problem.task_id), [])
        prompt = task.shown_prompt(problem, settings) if samples else ""
        for index, sample in enumerate(samples):
            results = {c: store.executions.get((name, problem.task_id, index, c)) for c in task.checks}
            for check, result in results.items():
                status = GENERATION_ERROR if sample.error else result.status.value if result else NOT_EXECUTED
                verdicts[check].append((problem.task_id, status))
            head = results[task.checks[0]]
            record = {"task": name, "task_id": problem.task_id, "index": index, "prompt": prompt}
            if task.kind == "infill" and hasattr(problem, "suffix"):
                record["suffix"] = problem.suffix
            record |= {"completion": sample.completion, "raw": sample.raw}
            record["status"] = verdicts[task.checks[0]][-1][1]
            record["passed"] = record["status"] == "passed"
            record["error"] = sample.error or (head.detail if head and not head.passed else None)
            record["runtime"] = head.runtime if head else None
            if len(task.checks) > 1:
                record["checks"] = {
                    c: {"status": r.status.value, "detail": r.detail, "runtime": r.runtime} if r else None
                    for c, r in results.items()
                }
            records.append(record)
    return verdicts, records


def generation(metrics: dict, settings: GenSettings, pregenerated: bool) -> dict:
    """How a task's samples came to be: n as scored (``[min, max]`` where problems differ), and the
    run's temperature, unknown (None) for samples generated elsewhere."""
    n = metrics["n"] if metrics["n"] == metrics["n_max"] else [metrics["n"], metrics["n_max"]]
    return {"n": n, "temperature": None if pregenerated else settings.sampling.temperature}


def write_outputs(options: Any, backend: Any, plans: list, skipped: dict[str, str], store: RunStore) -> dict:
    summary: dict[str, Any] = {}
    records: list[dict] = []
    for plan in plans:
        if plan.task.kind == LOGLIKELIHOOD:
            entry = plan.task.score_summary(plan.problems, store, backend, options)
            summary[plan.task.name] = entry | {"title": plan.task.title, "source": str(plan.source)}
            continue
        verdicts, task_records = collect(plan, store, options.settings)
        records += task_records
        entry = task_metrics(verdicts, plan.task.checks, options.ks)
        valid = syntax_valid(plan.task, plan.problems, store.generations)
        if valid is not None:
            entry["syntax_valid"] = valid
        entry |= {"title": plan.task.title, "source": str(plan.source), "excluded": dict(plan.task.excluded)}
        entry["generation"] = generation(entry, options.settings, backend.pregenerated)
        if plan.coverage is not None:
            entry["coverage"] = plan.coverage.as_dict()
        if plan.task.dated and options.release_window is not None:
            entry["release_window"] = str(options.release_window)
        for facet, labels in plan.task.breakdown(plan.problems).items():  # LiveCodeBench: by difficulty
            entry[f"by_{facet}"] = {
                label: check_metrics(
                    [v for v in verdicts[plan.task.checks[0]] if labels[v[0]] == label], options.ks
                )
                for label in sorted(set(labels.values()))
            }
        if plan.notes:
            entry["warnings"] = list(plan.notes)
        calibrated = [r for (task, _), r in store.calibration.items() if task == plan.task.name]
        if calibrated:
            values = [r["timeout"] for r in calibrated]
            entry["timeouts"] = {"min": min(values), "max": max(values), "factor": options.timeout_factor}
        failures = {r["key"]: f"{r['status']}: {r['detail']}" for r in calibrated if r["status"] != "passed"}
        if failures:
            entry["reference_failures"] = failures
        summary[plan.task.name] = entry
    for name, why in skipped.items():
        summary[name] = {"skipped": why}
    store.write_jsonl("samples.jsonl", records)
    _write(store.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    table = summary_table(summary, options.ks)
    _write(
        store.out / "report.md",
        markdown(summary, table, backend.name, options.settings, backend.pregenerated),
    )
    # a terminal gets its own width; piped output a wide one, so that no name is cut
    Console(width=None if sys.stdout.isatty() else 200).print(_rich_table(table, backend.name))
    return summary


def summary_table(summary: dict, ks: tuple[int, ...]) -> list[list[str]]:
    """Rows of the report: a header, then one per task and check. Columns no row uses are left out
    (pass@k beyond n; error kinds that did not occur), so the table fits a terminal."""
    rows_of = []  # (label, metrics) per task and check
    for name, entry in summary.items():
        if "counts" in entry:  # verdicts: pass@k and their counts
            rows_of.append((name, entry))
            rows_of += [
                (f"{name} ({c})", v) for c, v in entry.items() if isinstance(v, dict) and "counts" in v
            ]
    shown = [k for k in sorted(set(ks)) if any(f"pass@{k}" in m for _, m in rows_of)]
    extra = [c for c in _COLUMNS[3:] if any(m["counts"].get(c) for _, m in rows_of)]
    columns = [
        *_COLUMNS[:3],
        *extra,
        *([NOT_EXECUTED] if any(m["counts"].get(NOT_EXECUTED) for _, m in rows_of) else []),
    ]
    # columns of other metrics, shown when some task has them
    others = [m for m in _OTHERS if any(m in e for e in summary.values())]
    columns = columns if rows_of else []  # only texts were scored: no verdicts to count
    headers = [_OTHERS[m] for m in others]
    # a skipped task's reason has a column of its own, there only when some task was skipped
    why = [""] if any("skipped" in e for e in summary.values()) else []
    rows = [
        [
            "task",
            "n",
            "problems",
            *(f"pass@{k}" for k in shown),
            *headers,
            *columns,
            *(["skipped"] * len(why)),
        ]
    ]
    for label, metrics in rows_of:
        scores = [f"{metrics[f'pass@{k}']:.4f}" if f"pass@{k}" in metrics else "-" for k in shown]
        extra = [_number(metrics.get(m)) for m in others]
        counts = [str(metrics["counts"].get(c, 0)) for c in columns]
        n = str(metrics["n"]) + (
            f"-{metrics['n_max']}" if metrics.get("n_max", metrics["n"]) != metrics["n"] else ""
        )
        rows.append([label, n, str(metrics["problems"]), *scores, *extra, *counts, *why])
    for name, entry in summary.items():
        if "skipped" not in entry and "counts" not in entry:  # scored texts: its numbers, "-" else
            extra = [_number(entry.get(m)) for m in others]
            rows.append(
                [
                    name,
                    "-",
                    str(entry.get("documents", entry.get("pairs", entry.get("problems", "-")))),
                    *(["-"] * len(shown)),
                    *extra,
                    *(["-"] * len(columns)),
                    *why,
                ]
            )
    for name, entry in summary.items():
        if "skipped" in entry:
            rows.append([name, *(["-"] * (len(rows[0]) - 2)), entry["skipped"]])
    return rows


def markdown(
    summary: dict, table: list[list[str]], backend: str, settings: GenSettings, pregenerated: bool = False
) -> str:
    lines = [f"# codelm eval: {backend}", ""]
    s = settings.sampling
    if pregenerated:
        lines.append(
            "Samples scored as given: the file does not record how they were generated (temperature, "
            "prompt mode), so n is what it holds per problem."
        )
    else:
        lines.append(
            f"Prompt mode {settings.mode}, top_p {s.top_p}, "
            f"max new tokens {settings.max_new_tokens or 'per task'}, seed {s.seed}."
        )
    generated = {n: e["generation"] for n, e in summary.items() if "generation" in e}
    if generated:
        lines += ["", "| task | n | temperature |", "|---|---|---|"]
        for name, g in generated.items():
            n = g["n"] if isinstance(g["n"], int) else f"{g['n'][0]}-{g['n'][1]} (varies by problem)"
            temperature = "not recorded (samples file)" if g["temperature"] is None else g["temperature"]
            lines.append(f"| {name} | {n} | {temperature} |")
    lines += ["", "| " + " | ".join(_cell(c) for c in table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table[1:]]
    notes = [n for n, e in summary.items() if _noted(e)]
    if notes:
        lines.append("")
    for name in notes:
        entry = summary[name]
        if "unigram_fitted_on" in entry:
            lines.append(
                f"- {name}: {entry['tokens']} tokens of {entry['documents']} documents; "
                f"unigram baseline fitted on {entry['unigram_fitted_on']}"
            )
        if "reward_margin" in entry:
            lines.append(
                f"- {name}: {entry['pairs']} pairs; reward margin with beta {entry['beta']} against "
                f"{entry['reference_model']}"
            )
        coverage = entry.get("coverage")
        if coverage and coverage["missing"]:
            shown = ", ".join(coverage["missing"][:10])
            more = f" and {len(coverage['missing']) - 10} more" if len(coverage["missing"]) > 10 else ""
            lines.append(
                f"- {name}: the samples cover {coverage['problems']} of {coverage['selected']} selected "
                f"problems; scored on those. Missing: {shown}{more} (all in summary.json)"
            )
        lines += [f"- {name}: {warning}" for warning in entry.get("warnings", [])]
        if entry.get("excluded"):
            lines.append(f"- {name}: {len(entry['excluded'])} problems excluded (reasons in summary.json)")
        for key, why in entry.get("reference_failures", {}).items():
            lines.append(f"- {name}: the canonical solution of {key} failed here: {why}")
    return "\n".join(lines) + "\n"


def _noted(entry: dict) -> bool:
    coverage = entry.get("coverage") or {}
    return bool(
        entry.get("excluded")
        or entry.get("reference_failures")
        or entry.get("warnings")
        or coverage.get("missing")
        or "unigram_fitted_on" in entry
        or "reward_margin" in entry
    )


def _cell(text: str) -> str:
    """A markdown table cell: a reason may hold ``|`` or a newline."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _rich_table(rows: list[list[str]], backend: str) -> Table:
    table = Table(title=f"codelm eval: {backend}")
    for header in rows[0]:
        table.add_column(
            header, justify="left" if header in ("task", "skipped") else "right", no_wrap=header == "task"
        )
    for row in rows[1:]:
        table.add_row(*row[: len(rows[0])])
    return table


def _write(path: Any, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
