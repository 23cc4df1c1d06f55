"""HumanEval-X in the task registry: ``humaneval-x-<language>``, one task per language.

The benchmark itself (problems, CodeGeeX's check programs and stop rules, toolchains and their
caches) lives in ``codelm.eval.tasks.humaneval_x``; this adapter only fits it to the ``Task``
interface and imports it on first use. A task whose module cannot be imported, or whose
language's toolchain is missing here, reports why through ``unavailable`` and the runner skips
it (listed in the summary), rather than scoring every sample as a failure.

Base models continue ``generation_prompt(problem)`` (the record's prompt; Rust's with its
declaration) and stop at the language's ``STOPS``; the raw text is then cut by the module's
``truncate`` (CodeGeeX's brace rule for C++/Java/JavaScript). Chat models are asked to complete
the code and answer in a fence of that language.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from codelm.errors import CodelmError

from ..generation import GenRequest, GenSettings
from ..program import Program
from ..prompts import chat_function_prompt, extract_code
from .base import Task
from .data import Source

MODULE = "codelm.eval.tasks.humaneval_x"
# the languages of the HumanEval-X data files (shared/data/SOURCES.md); the module's LANGUAGES rule
LANGUAGES = ("python", "cpp", "java", "js", "go", "rust")
_NAMES = {"python": "Python", "cpp": "C++", "java": "Java", "js": "JavaScript", "go": "Go", "rust": "Rust"}


def load_module() -> ModuleType | str:
    """The HumanEval-X module, or why it cannot be imported."""
    try:
        return importlib.import_module(MODULE)
    except ImportError as exc:
        return f"module {MODULE} not available ({exc})"


class HumanEvalXTask(Task):
    def __init__(self, language: str) -> None:
        self.language = language
        self.name, self.title = f"humaneval-x-{language}", f"HumanEval-X {_NAMES.get(language, language)}"
        self.file_names = (f"humaneval_{language}.jsonl.gz", f"humaneval_{language}.jsonl")
        self.timeout_floor = 10.0  # JVM and node start-up, as the module's own default

    @property
    def module(self) -> ModuleType:
        module = load_module()
        if isinstance(module, str):
            raise CodelmError(module)
        return module

    @property
    def excluded(self) -> Mapping[str, str]:  # type: ignore[override]
        module = load_module()
        return {} if isinstance(module, str) else dict(module.EXCLUDED.get(self.language, {}))

    def unavailable(self) -> str | None:
        module = load_module()
        if isinstance(module, str):
            return module
        if self.language not in module.LANGUAGES:
            return f"{MODULE} has no language {self.language!r}"
        ok, why = module.toolchain_available(self.language)
        return None if ok else f"toolchain missing: {why}"

    def isolation_keep(self) -> tuple[str, ...]:
        return tuple(self.module.sandbox_keep_paths())

    def load(self, source: Source) -> list[Any]:
        if source.path is None:
            raise CodelmError(f"{self.name}: no hub dataset; pass --data-dir holding {self.file_names[0]}")
        return list(self.module.load_problems(Path(source.path), self.language))

    @property
    def stops(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.module.STOPS[self.language])

    def request(self, problem: Any, settings: GenSettings) -> GenRequest:
        prompt = self.module.generation_prompt(problem)
        if settings.mode == "chat":
            message = {"role": "user", "content": chat_function_prompt(prompt, self.language)}
            return self.build_request(problem, settings, "chat", messages=(message,))
        return self.build_request(problem, settings, "completion", prompt=prompt)

    def clean(self, problem: Any, text: str, mode: str) -> str:
        if mode == "chat":  # best effort: keep what follows the prompt's last line (the signature)
            code = extract_code(text, language=self.language)
            last = self.module.generation_prompt(problem).rstrip().splitlines()[-1].strip()
            at = code.find(last) if last else -1
            text = code[at + len(last) :] if at >= 0 else code
        return self.module.truncate(self.language, text)

    def programs(self, problem: Any, completion: str) -> dict[str, Program]:
        return {"main": self.module.to_program(problem, completion, timeout=None)}

    def reference(self, problem: Any) -> str:
        return problem.canonical_solution

    def reference_programs(self, problem: Any) -> dict[str, Program]:
        return {"main": self.module.reference_programs([problem], timeout=None)[0]}


PYTHON = HumanEvalXTask("python")
CPP = HumanEvalXTask("cpp")
JAVA = HumanEvalXTask("java")
JS = HumanEvalXTask("js")
GO = HumanEvalXTask("go")
RUST = HumanEvalXTask("rust")
