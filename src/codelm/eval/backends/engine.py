"""The in-process backend: codelm's own engine on a local checkpoint (or a hub id).

Requests become engine requests of the same kind (the engine renders FIM and chat in the model
family's own formats) and are generated in batches by ``Engine.generate``. Sampling is exactly
the run's: the family's recommended settings are overridden, not merged, so that every model is
evaluated the same way. A batch whose requests the engine refuses (a prompt longer than the
context window) is retried request by request, so only the offending ones fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codelm.errors import RequestError

from ..generation import GenerationFailed, GenRequest


class EngineBackend:
    pregenerated = False

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name = f"engine:{engine.path}"

    @classmethod
    def from_pretrained(cls, model: str, **load_kwargs: Any) -> EngineBackend:
        from codelm.engine import Engine

        return cls(Engine.from_pretrained(model, **load_kwargs))

    def supports(self, kind: str) -> str | None:
        family = self.engine.family
        if kind == "infill" and family.fim is None:
            return f"model family {family.name} does not support fill-in-the-middle"
        if (
            kind == "chat"
            and family.chat is None
            and not getattr(self.engine.tokenizer, "chat_template", None)
        ):
            return f"model family {family.name} has no chat format (it is a base model): drop --chat"
        return None

    def _request(self, request: GenRequest):
        s = request.sampling
        sampling = {
            "max_new_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k or 0,
            "repetition_penalty": s.repetition_penalty or 1.0,
            "n": request.n,
            "seed": s.seed,
            "stop": list(request.stop),
        }
        if request.kind == "infill":
            return self.engine.infill_request(request.prompt, request.suffix, **sampling)
        if request.kind == "chat":
            return self.engine.chat_request([dict(m) for m in request.messages], **sampling)
        return self.engine.completion_request(request.prompt, **sampling)

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        built = [self._request(r) for r in requests]
        try:
            results = self.engine.generate(built)
        except RequestError:  # some request is refused: find which, and generate the others
            return self._one_by_one(built)
        return [[c.text for c in result.completions] for result in results]

    def _one_by_one(self, built: list) -> list[list[str]]:
        texts: list[list[str]] = []
        errors: dict[int, str] = {}
        for index, request in enumerate(built):
            try:
                texts.append([c.text for c in self.engine.generate([request])[0].completions])
            except RequestError as exc:
                texts.append([])
                errors[index] = str(exc)
        if errors:
            raise GenerationFailed(texts, errors)
        return texts

    def close(self) -> None:
        pass
