"""The serving pillar: an OpenAI-compatible HTTP server with FIM, chat, streaming and a playground.

Layers, each in its own module (as vLLM's entrypoints are):

    routes.py         HTTP transport only (FastAPI), the playground page, disconnect detection
    protocol.py       request and response schemas (pydantic), OpenAI-compatible plus code extras
    serving.py        the logic: model names, FIM/repo-context/line-mode rendering, responses
    sse.py            server-sent event framing of streamed chunks
    engine_client.py  async wrapper over the engine's continuous-batching Scheduler
    gateway.py        the same interface over an upstream OpenAI-compatible server (vLLM, TGI)
    metrics.py        Prometheus counters and histograms; auth.py the optional API key
    errors.py         every failure as an OpenAI-style JSON error with the right status
    app.py, launch.py assembling the app, `codelm serve`, and a server thread for tests

Importing this package loads nothing heavy; `codelm serve` imports what it needs.
"""
