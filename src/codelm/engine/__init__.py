"""The inference engine: requests, sampling, stops, streaming and batching on transformers."""

from codelm.engine.engine import Engine
from codelm.engine.params import Completion, Request, Result, SamplingParams, StreamChunk, TokenLogprob

__all__ = ["Completion", "Engine", "Request", "Result", "SamplingParams", "StreamChunk", "TokenLogprob"]
