"""The report's per-source funnel: read, dropped while reading and later (per reason), kept, bytes."""

from __future__ import annotations

import json

from codelm.data.report import write_report


def _stats(steps: list[dict], out_docs: int, out_bytes: int) -> dict:
    full = [{"created": 0, "modified": {}, "counters": {}, **s} for s in steps]
    return {"steps": full, "profile": {"output": {"docs": out_docs, "bytes": out_bytes}}}


def test_one_source(tmp_path):
    steps = [
        {"name": "git_commit_reader", "docs_in": 10, "kept": 8, "dropped": {"merge_commit": 2}},
        {"name": "commit_filter", "docs_in": 8, "kept": 5, "dropped": {"short_message": 3}},
    ]
    (tmp_path / "stats.json").write_text(json.dumps(_stats(steps, 5, 4000)))
    md, html = write_report(tmp_path, plots=False)
    row = "| git_commit_reader | 10 | merge_commit=2 | commit_filter: short_message=3 | 5 | 3.9 KB | 1,000 |"
    assert row in md.read_text() and "<h2>Sources</h2>" in html.read_text()


def test_two_sources_share_the_later_steps(tmp_path):
    steps = [
        {"name": "html_reader", "docs_in": 6, "kept": 5, "dropped": {"empty_extraction": 1}},
        {"name": "markup_reader", "docs_in": 9, "kept": 9, "dropped": {}},  # 5 passed on + 4 read
        {"name": "exact_dedup", "docs_in": 9, "kept": 7, "dropped": {"exact_duplicate": 2}},
    ]
    (tmp_path / "stats.json").write_text(json.dumps(_stats(steps, 7, 400)))
    text = write_report(tmp_path, plots=False)[0].read_text()
    assert "| html_reader | 6 | empty_extraction=1 |  |  |  |  |" in text
    assert "| markup_reader | 4 | - |  |  |  |  |" in text
    assert "| all sources | 10 | - | exact_dedup: exact_duplicate=2 | 7 | 400 B | 100 |" in text


def test_each_of_two_sources_gets_its_own_later_drops_kept_and_tokens(tmp_path):
    """A real curation with two readers: documents carry their reader, so exact_dedup's drops and
    the output are counted per source (the duplicate is the second source's copy)."""
    from codelm.data.curate import curate
    from codelm.data.curate_config import CurateConfig

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(
        "".join(json.dumps({"id": f"a{i}", "text": f"alpha text {i}\n" * 20}) + "\n" for i in range(3))
    )
    b.write_text(json.dumps({"id": "b0", "text": "alpha text 0\n" * 20}) + "\n{broken\n")
    raw = {
        "output_dir": str(tmp_path / "out"),
        "executor": {"kind": "local", "workers": 1, "shards": 2},
        "readers": [{"jsonl": {"paths": [str(a)]}}, {"jsonl": {"paths": [str(b)]}}],
        "steps": ["exact_dedup"],
    }
    curate(CurateConfig.from_dict(raw), overwrite=True)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| jsonl_reader | 3 | - | - | 3 | 780 B | 195 |" in text
    assert "| jsonl_reader#2 | 2 | invalid_json=1 | exact_dedup: exact_duplicate=1 | 0 | 0 B | 0 |" in text
    assert "| all sources | 5 | - | exact_dedup: exact_duplicate=1 | 3 | 780 B | 195 |" in text
