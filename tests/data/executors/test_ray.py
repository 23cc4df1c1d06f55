"""The Ray executor on a local cluster writes exactly what the local executor writes."""

import json
import time

import pytest

from codelm.data.executors import LocalExecutor, make_executor

from .conftest import shard_bytes
from .test_local import steps

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'codelm[ray]')")


def test_ray_equals_local(crawl, tmp_path):
    LocalExecutor(tmp_path / "local", shards=3, workers=2).run(steps(crawl))
    start = time.monotonic()
    ex = make_executor("ray", str(tmp_path / "ray"), shards=3, workers=2)
    stats = ex.run(steps(crawl))
    elapsed = time.monotonic() - start
    assert not ray.is_initialized()  # the executor shut down the cluster it started
    assert shard_bytes(tmp_path / "ray") == shard_bytes(tmp_path / "local")
    local = json.loads((tmp_path / "local" / "stats.json").read_text())
    remote = json.loads((tmp_path / "ray" / "stats.json").read_text())
    assert remote["steps"] == local["steps"] and remote["executor"] == "ray"
    stats.check()
    # a guard against pathological slowness (e.g. every document through the object store), not a
    # benchmark: the whole test took 23 s on 2 cores at a load average of 10 (60 s was too close)
    assert elapsed < 300, f"ray run took {elapsed:.0f} s"
