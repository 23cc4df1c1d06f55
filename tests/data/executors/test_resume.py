"""Crash safety: SIGKILL a real curation mid-run, resume it, get the same bytes, redo nothing finished."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import yaml

from .conftest import make_crawl, shard_bytes

SLOW_STEP = '''
import time
from codelm.data.pipeline import PipelineStep

class Slow(PipelineStep):
    """Passes documents on, slowly, so the test can kill the run in the middle."""

    def __init__(self, seconds: float = 0.05, name=None, exclusion_writer=None):
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        self.seconds = seconds

    def run(self, docs):
        for doc in docs:
            time.sleep(self.seconds)
            yield self.keep(doc)
'''


def write_config(path, crawl, out, seconds):
    path.write_text(
        yaml.safe_dump(
            {
                "output_dir": str(out),
                "write_excluded": True,
                "report": False,
                "executor": {"kind": "local", "workers": 2, "shards": 8},
                "readers": [{"directory": {"root": str(crawl)}}],
                "steps": [
                    {"language_filter": {"languages": ["python"]}},
                    {"slowmod:Slow": {"seconds": seconds}},
                    "exact_dedup",
                    "near_dedup",
                    {"quality_filter": {"drop_fraction": 0.1}},
                ],
            }
        )
    )
    return path


def curate(config, env, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "codelm.data.curate", str(config), "--no-progress", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_kill_9_then_resume(tmp_path):
    crawl = make_crawl(tmp_path / "crawl")
    (tmp_path / "slowmod.py").write_text(textwrap.dedent(SLOW_STEP))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", crawl, out, seconds=0.15)
    proc = curate(config, env)
    markers = out / "stages" / "00-read"
    deadline = time.monotonic() + 60
    while len(list(markers.glob("*.done.json"))) < 2:
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no shard finished within 60 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, as a crash or OOM kill would
    proc.wait()
    done = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in markers.glob("*.done.json")}
    assert 2 <= len(done) < 8, "the kill should land mid-stage"
    assert not (out / "stats.json").exists()

    resumed = curate(config, env, "--resume")
    log = resumed.communicate(timeout=120)[0].decode()
    assert resumed.returncode == 0, log
    for name, ident in done.items():  # finished shards were not redone
        p = markers / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == ident
    assert f"resume: 00-read run: {len(done)} shard(s) already done" in log
    assert not list(out.rglob("*.tmp-*"))

    reference = tmp_path / "ref"
    ref = curate(write_config(tmp_path / "r.yaml", crawl, reference, seconds=0.0), env)
    assert ref.wait(timeout=120) == 0, ref.stdout.read().decode()
    assert shard_bytes(out) == shard_bytes(reference)
    assert (out / "stats.json").read_text().split('"executor"')[0] == (
        reference / "stats.json"
    ).read_text().split('"executor"')[0]
