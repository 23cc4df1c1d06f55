"""Concurrency: dynamic batching, a bounded queue (503), and cancellation when clients leave.

Nothing here depends on timing: the model is held at a gate or slowed so much that each step the
test waits for (queued, running, cancelled) is certain, and every wait polls a condition.
"""

import threading

import httpx

from codelm.serve.engine_client import LocalEngineClient

from .helpers import Gate, slow_down, wait_until

PROMPTS = ["import os\n", "def add(a, b):\n", "class Stack:\n", "x = [1, 2"]


def test_concurrent_requests_are_batched(own_engine, start_server):
    engine = own_engine("llama")
    gate = Gate(engine)
    client = LocalEngineClient(engine)
    url = start_server(client, "llama").url
    results: dict[int, dict] = {}

    def ask(i: int) -> None:
        body = {"prompt": PROMPTS[i], "max_tokens": 16, "temperature": 0, "ignore_eos": True}
        results[i] = httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    threads[0].start()
    assert gate.entered.wait(60)  # the first request is being prefilled, held at the gate
    for t in threads[1:]:
        t.start()
    wait_until(lambda: client.scheduler.queue_depth == 3, what="three queued requests")
    gate.open()
    for t in threads:
        t.join(120)
    assert client.scheduler.stats.max_rows == 4  # the three waiting ones joined the running batch
    for i, prompt in enumerate(PROMPTS):
        want = engine.complete(prompt, max_new_tokens=16, temperature=0, ignore_eos=True).text
        assert results[i]["choices"][0]["text"] == want


def test_full_queue_answers_503(own_engine, start_server):
    engine = own_engine("llama")
    gate = Gate(engine)
    client = LocalEngineClient(engine, max_queue=1)
    url = start_server(client, "llama").url
    body = {"prompt": "x", "max_tokens": 4}
    statuses = []
    first = threading.Thread(
        target=lambda: statuses.append(
            httpx.post(f"{url}/v1/completions", json=body, timeout=120).status_code
        )
    )
    first.start()
    assert gate.entered.wait(60)  # running (held in its prefill)
    second = threading.Thread(
        target=lambda: statuses.append(
            httpx.post(f"{url}/v1/completions", json=body, timeout=120).status_code
        )
    )
    second.start()
    wait_until(lambda: client.scheduler.queue_depth == 1, what="a queued request")
    r = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 503
    assert r.json()["error"]["type"] == "server_busy" and "busy" in r.json()["error"]["message"]
    gate.open()
    first.join(120)
    second.join(120)
    assert statuses == [200, 200]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'codelm_errors_total{code="queue_full",status="503"} 1.0' in metrics


def _cancelled(client: LocalEngineClient, rows: int) -> bool:
    return client.scheduler.stats.cancelled >= rows and client.scheduler.running_rows == 0


def test_stream_disconnect_cancels_generation(own_engine, start_server):
    engine = own_engine("llama")
    slow_down(engine, 0.01)  # 1000 tokens would take over 10 s
    client = LocalEngineClient(engine)
    url = start_server(client, "llama").url
    body = {"prompt": "x", "max_tokens": 1000, "ignore_eos": True, "stream": True, "n": 2}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # one chunk is enough; leaving the block closes the connection
    wait_until(lambda: _cancelled(client, 2), what="the scheduler to drop both rows")
    metrics = httpx.get(f"{url}/metrics").text
    assert "codelm_requests_cancelled_total 1.0" in metrics
    assert 'codelm_requests_total{endpoint="completions",outcome="cancelled"} 1.0' in metrics
    assert "codelm_running_rows 0.0" in metrics


def test_non_streaming_disconnect_cancels_generation(own_engine, start_server):
    engine = own_engine("llama")
    slow_down(engine, 0.01)
    client = LocalEngineClient(engine)
    url = start_server(client, "llama").url
    body = {"prompt": "x", "max_tokens": 1000, "ignore_eos": True}
    try:
        httpx.post(f"{url}/v1/completions", json=body, timeout=httpx.Timeout(60, read=0.5))
        raise AssertionError("a 1000-token request at 10 ms per token cannot finish in 0.5 s")
    except httpx.ReadTimeout:
        pass  # the client gives up and closes its connection
    wait_until(lambda: _cancelled(client, 1), what="the scheduler to drop the row")
    ok = httpx.post(f"{url}/v1/completions", json={"prompt": "x", "max_tokens": 2}, timeout=60)
    assert ok.status_code == 200  # and the server carries on
