"""The shipped commit and docs curations: run on real local inputs, Ray equals local, kill -9 resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from codelm.data.curate import curate
from codelm.data.curate_config import load_config

from ..conftest import REPO_ROOT, SHARED_DATA, stdlib_py_files
from ..doc_pages import PAGE, PY_DOCS
from ..git_repos import commit, init
from .conftest import read_output, shard_bytes
from .test_resume import SLOW_STEP

CONFIGS = REPO_ROOT / "configs" / "data"


def history(root: Path, n: int = 24) -> Path:
    """A repository whose commits add and then edit real stdlib modules, one per commit."""
    repo = init(root / "hist")
    files = stdlib_py_files(n // 2, max_bytes=8_000)
    for src in files:
        commit(repo, {f"pkg/{src.name}": src.read_text("utf-8")}, f"Add the {src.stem} module to the package")
    for i, src in enumerate(files):
        text = src.read_text("utf-8").replace("\n\n\n", f"\n\n\n# reviewed in round {i}\n", 1)
        commit(
            repo,
            {f"pkg/{src.name}": text},
            f"Mark {src.stem} as reviewed (round {i})\n\nBy dev{i}@corp-mail.net",
        )
    return repo


def site(root: Path) -> Path:
    """A few pages: fixtures, plus Debian's Python docs pages when installed."""
    out = root / "site"
    out.mkdir(parents=True)
    for i in range(4):
        (out / f"greet{i}.html").write_text(PAGE.replace("Python", f"Python {i}"), "utf-8")
    (out / "pie.html").write_text(
        "<html><body><p>" + "Peel the apples and bake the pie. " * 20 + "</p></body></html>"
    )
    if (PY_DOCS / "library").is_dir():
        for page in sorted((PY_DOCS / "library").glob("*.html"))[:24]:
            shutil.copy(page, out / page.name)
    return out


def config_file(
    tmp: Path, name: str, source: Path, out: Path, *, kind: str = "local", slow: float = 0.0
) -> Path:
    """The shipped config, pointed at `source` and `out`; decontamination only with the benchmark files."""
    raw = yaml.safe_load((CONFIGS / name).read_text())
    raw.update(output_dir=str(out), report=False)
    raw["executor"] = {"kind": kind, "workers": 2, "shards": 4}
    [(reader, settings)] = raw["readers"][0].items()
    settings["repo" if reader == "git_commits" else "paths"] = (
        str(source) if reader == "git_commits" else [str(source)]
    )
    steps = raw["steps"]
    for entry in steps:
        if isinstance(entry, dict) and "decontaminate" in entry:
            entry["decontaminate"]["benchmarks"] = str(SHARED_DATA)
    if not (SHARED_DATA / "HumanEval.jsonl.gz").is_file():
        steps[:] = [s for s in steps if not (isinstance(s, dict) and "decontaminate" in s)]
    if slow:
        steps.insert(1, {"slowmod:Slow": {"seconds": slow}})
    path = tmp / f"{name}-{out.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    return {"commits.yaml": history(root) if shutil.which("git") else None, "docs.yaml": site(root)}


def _skip_without(name: str, inputs: dict) -> Path:
    if inputs[name] is None:
        pytest.skip("git is not installed (apt-get install git)")
    pytest.importorskip("resiliparse", reason="resiliparse is not installed (pip install 'codelm[data]')")
    return inputs[name]


@pytest.mark.parametrize("name", ["commits.yaml", "docs.yaml"])
def test_shipped_config_runs_on_local_input(name, inputs, tmp_path):
    source = _skip_without(name, inputs)
    stats, _ = curate(load_config(config_file(tmp_path, name, source, tmp_path / "out")))
    stats.check()
    docs = read_output(tmp_path / "out")
    assert docs and len(docs) == stats[list(stats.steps)[-1]].kept
    if name == "commits.yaml":
        assert stats["git_commit_reader"].docs_in == 24
        assert all(d["text"].startswith("<file_sep>COMMIT_EDITMSG\n") for d in docs)
        assert stats["pii_redactor"].modified["email"] >= 1 and "corp-mail.net" not in json.dumps(docs)
    else:
        assert stats["code_related_filter"].dropped["not_code_related"] >= 1  # the pie
        assert (
            stats["exact_dedup"].n_dropped + stats["near_dedup"].n_dropped >= 1
        )  # near-identical greet pages
        assert all(d["metadata"]["lang"] for d in docs if "greet" in d["id"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["commits.yaml", "docs.yaml"])
def test_ray_equals_local(name, inputs, tmp_path):
    source = _skip_without(name, inputs)
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'codelm[ray]')")
    curate(load_config(config_file(tmp_path, name, source, tmp_path / "local")))
    curate(load_config(config_file(tmp_path, name, source, tmp_path / "ray", kind="ray")))
    assert not ray.is_initialized()
    assert shard_bytes(tmp_path / "ray") == shard_bytes(tmp_path / "local")
    local, remote = (json.loads((tmp_path / d / "stats.json").read_text()) for d in ("local", "ray"))
    assert remote["steps"] == local["steps"] and remote["executor"] == "ray"


def _curate(config: Path, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "codelm.data.curate", str(config), "--no-progress", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["commits.yaml", "docs.yaml"])
def test_kill_9_then_resume_is_byte_identical(name, inputs, tmp_path):
    source = _skip_without(name, inputs)
    (tmp_path / "slowmod.py").write_text(textwrap.dedent(SLOW_STEP))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    config = config_file(tmp_path, name, source, out, slow=0.3)
    proc = _curate(config, env)
    markers = out / "stages" / "00-read"
    deadline = time.monotonic() + 120
    while len(list(markers.glob("*.done.json"))) < 1:
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no shard finished within 120 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in markers.glob("*.done.json")}
    assert 1 <= len(done) < 4 and not (out / "stats.json").exists(), "the kill should land mid-stage"
    resumed = _curate(config, env, "--resume")
    log = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, log
    assert {p: (markers / p).stat().st_mtime_ns for p in done} == done  # finished shards not redone
    reference = tmp_path / "ref"
    ref = _curate(config_file(tmp_path, name, source, reference, slow=0.001), env)
    assert ref.wait(timeout=300) == 0, ref.stdout.read().decode()
    assert shard_bytes(out) == shard_bytes(reference)


def test_repo_and_docs_paths_default_and_follow_the_environment(monkeypatch):
    monkeypatch.delenv("REPO", raising=False)
    monkeypatch.delenv("PY_DOCS", raising=False)
    assert load_config(CONFIGS / "commits.yaml").readers == [
        ("git_commits", {"repo": ".", "rev": "HEAD", "related_files": 5})
    ]
    assert load_config(CONFIGS / "docs.yaml").readers[0][1]["paths"] == [str(PY_DOCS)]
    monkeypatch.setenv("REPO", "/srv/git/x.git")
    assert load_config(CONFIGS / "commits.yaml").readers[0][1]["repo"] == "/srv/git/x.git"
