"""`ServeConfig`: what `codelm serve` runs, as one dataclass: its flags, `--config FILE` and a
recipe's `serve:` section all become this. Light to import (no torch, no FastAPI)."""

from __future__ import annotations

from dataclasses import dataclass

from codelm.config import ConfigError


@dataclass
class ServeConfig:
    model: str | None = None  # checkpoint directory or hub id (a recipe fills in its final checkpoint)
    family: str | None = None  # force the family (required with `upstream` when not detectable)
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # require `Authorization: Bearer KEY` (default: $CODELM_API_KEY)
    upstream: str | None = None  # gateway mode: forward rendered prompts to this OpenAI-compatible URL
    served_model_name: str | None = None  # name reported by /v1/models (default: the model path's name)
    chat_format: str = "chat"  # "reasoning": the family's reasoning template (Seed-Coder-8B-Reasoning)
    reasoning: bool = True  # separate a reply's thinking into `reasoning_content`
    max_batch_size: int = 32  # rows decoded together per step
    max_queue: int = 256  # waiting requests before 503
    max_body_bytes: int = 4 << 20  # larger request bodies get 413 (serve/limits.py)
    client_timeout: float = 30.0  # seconds to send a request's headers, and its body (408)
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"serve.port must be in 0..65535 (0: any free port), got {self.port}")
        if self.max_batch_size < 1 or self.max_queue < 1:
            raise ConfigError("serve.max_batch_size and serve.max_queue must be >= 1")
        if self.chat_format not in ("chat", "reasoning"):
            raise ConfigError(f"serve.chat_format must be 'chat' or 'reasoning', got {self.chat_format!r}")
        if self.max_body_bytes < 1 or not self.client_timeout > 0:
            raise ConfigError("serve.max_body_bytes and serve.client_timeout must be positive")

    def command(self) -> str:
        """The `codelm serve` line that serves this config."""
        parts = ["codelm serve", f"--model {self.model}"]
        if self.family:
            parts.append(f"--family {self.family}")
        if self.host != "127.0.0.1":
            parts.append(f"--host {self.host}")
        if self.port != 8000:
            parts.append(f"--port {self.port}")
        if self.chat_format != "chat":
            parts.append(f"--chat-format {self.chat_format}")
        return " ".join(parts)
