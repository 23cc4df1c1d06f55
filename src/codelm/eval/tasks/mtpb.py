"""MTPB, the Multi-Turn Programming Benchmark of CodeGen1 (Nijkamp et al. 2022, section 4):
115 problems, each a few natural-language turns templated with ``{placeholders}`` and five inputs
with their expected outputs. One evaluated instance per (problem, input): task id
``MTPB/<problem id>/<input index>``.

Generation, as Salesforce's ``codegen1/benchmark/mtpb_sample.py``: the turns are rendered with
the input (``str.format``); the program starts as ``# Import libraries.\\n\\nimport numpy as np
\\n\\n``; each turn appends ``# {turn}\\n``, the model continues the whole program so far (at most
the problem's ``max_gen_length`` tokens, default 256), and the completion, cut by ``truncate``,
is appended with ``\\n\\n``. Instruct models (``--chat``) get the turns as successive user
messages and the code of each reply's fence is appended instead. Every sample has its own history.

Scoring: the final program runs in the sandbox and its last printed value is compared with the
expected output (``mtpb_check.py``). Canonical check: no reference programs exist, so the
self-test runs, per instance, the turns as comments followed by ``print(<expected output>)``.

Excluded (``EXCLUDED``): problems 38 and 46 read CSV files (``./datasets/*.csv``) that Salesforce
did not publish; problem 89's outputs are dicts and two of problem 41's are None, which
``check_equivalence`` rejects ("Unsupported type"), so no program can pass them. Problems 6 and 14
need pandas and scikit-learn importable by the evaluating interpreter.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..generation import Backend, Generated, GenRequest, GenSettings, chunks, generate_texts
from ..program import ExecResult, Program
from ..prompts import extract_code
from .base import Task, syntax_error_verdict
from .data import require_fields

CHECK_SOURCE = Path(__file__).with_name("mtpb_check.py")
PREFIX = "# Import libraries.\n\nimport numpy as np\n\n"
DEFAULT_MAX_GEN_LENGTH = 256  # mtpb_sample.sample_completions' default
_UNSCORABLE = {"38": "reads ./datasets/mlbootcamp5_train.csv, which Salesforce did not publish"}
_UNSCORABLE["46"] = "reads ./datasets/melb_data.csv, which Salesforce did not publish"
_UNSCORABLE["89"] = "expected outputs are dicts, which check_equivalence rejects (Unsupported type)"
EXCLUDED = {f"MTPB/{pid}/{i}": why for pid, why in _UNSCORABLE.items() for i in range(5)}
EXCLUDED |= {f"MTPB/41/{i}": "expected output is None, which check_equivalence rejects" for i in (1, 4)}
NEEDS = {"6": "pandas", "14": "sklearn"}
CHAT_INTRO = (
    "Write a Python program step by step. For each step, answer with only the code for that step in "
    "one ```python block; it is appended to the code of the previous steps and everything runs as one "
    "program (numpy is already imported as np).\n\n"
)
_TERMINALS = [
    re.compile(r, re.MULTILINE) for r in ["^#", re.escape("<|endoftext|>"), "^'''", '^"""', "\n\n\n"]
]


def truncate(completion: str) -> str:
    """Salesforce's per-turn cut (``mtpb_sample.truncate``): before a second top-level ``print`` or
    ``def``, then before the first comment line, end-of-text, docstring line or two blank lines."""
    prints = list(re.finditer("^print", completion, re.MULTILINE))
    if len(prints) > 1:
        completion = completion[: prints[1].start()]
    defs = list(re.finditer("^def", completion, re.MULTILINE))
    if len(defs) > 1:
        completion = completion[: defs[1].start()]
    found = [m.start() for m in (t.search(completion) for t in _TERMINALS) if m]
    return completion[: min(found)] if found else completion


@dataclass(frozen=True)
class Problem:
    task_id: str  # MTPB/<id>/<input index>
    name: str
    turns: tuple[str, ...]  # rendered with this instance's input
    expected: Any
    max_gen_length: int


class MtpbTask(Task):
    name = "mtpb"
    title = "MTPB (multi-turn)"
    file_names = ("mtpb.jsonl",)
    timeout_floor = 10.0  # every program imports numpy; Salesforce allowed 20 s
    preload = ("numpy",)  # imported once per sandbox worker instead of once per sample (~0.2 s)
    excluded = EXCLUDED

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        problems = []
        for record in sorted(records, key=lambda r: int(r["id"])):
            require_fields(record, ("id", "name", "prompts", "inputs", "outputs"), origin)
            # zip, as mtpb_sample.py does: problem 57 lists six outputs for five inputs (its last two
            # inputs were merged into one object upstream), and its sixth output goes unused
            for index, (values, expected) in enumerate(zip(record["inputs"], record["outputs"])):  # noqa: B905
                problems.append(
                    Problem(
                        task_id=f"MTPB/{record['id']}/{index}",
                        name=record["name"],
                        turns=tuple(turn.format(**values) for turn in record["prompts"]),
                        expected=expected,
                        max_gen_length=int(record.get("max_gen_length") or DEFAULT_MAX_GEN_LENGTH),
                    )
                )
        return problems

    def notes(self, problems: list[Problem]) -> list[str]:
        """Problems 6 and 14 cannot pass without pandas / scikit-learn (said only when selected)."""
        ids = {p.task_id.split("/")[1] for p in problems}
        return [
            f"MTPB/{pid} needs {module}, which is not installed: it cannot pass"
            for pid, module in NEEDS.items()
            if pid in ids and importlib.util.find_spec(module) is None
        ]

    def shown_prompt(self, problem: Problem, settings: GenSettings) -> str:
        return "\n".join(problem.turns)

    def _turn_request(self, problem: Problem, settings: GenSettings, context: Any, j: int) -> GenRequest:
        chat = settings.mode == "chat"
        limit = settings.max_new_tokens or (
            max(problem.max_gen_length, 512) if chat else problem.max_gen_length
        )
        seed = settings.sampling.seed  # distinct, reproducible histories per sample
        sampling = replace(settings.sampling, max_new_tokens=limit, seed=None if seed is None else seed + j)
        fields = {"messages": tuple(context)} if chat else {"prompt": context}
        return GenRequest(
            "chat" if chat else "completion", sampling=sampling, key=(self.name, problem.task_id), **fields
        )

    def generate(
        self, problems: list[Problem], backend: Backend, settings: GenSettings
    ) -> Iterator[tuple[Problem, list[Generated]]]:
        """Turn by turn, every sample with its own history (see the module docstring)."""
        if backend.pregenerated:  # a samples file holds whole programs
            for batch in chunks(problems, settings.batch_size):
                requests = [GenRequest("completion", key=(self.name, p.task_id)) for p in batch]
                for problem, texts in zip(batch, generate_texts(backend, requests), strict=True):
                    failed = isinstance(texts, str)
                    yield problem, [Generated("", "", texts)] if failed else [Generated(t, t) for t in texts]
            return
        for batch in chunks(problems, max(1, settings.batch_size // settings.n)):
            yield from self._generate_batch(list(batch), backend, settings)

    def _generate_batch(
        self, batch: list[Problem], backend: Backend, settings: GenSettings
    ) -> Iterator[tuple[Problem, list[Generated]]]:
        chat = settings.mode == "chat"
        samples = [(i, j) for i in range(len(batch)) for j in range(settings.n)]
        programs = dict.fromkeys(samples, PREFIX)
        messages: dict[tuple[int, int], list[dict]] = {s: [] for s in samples}
        raw: dict[tuple[int, int], list[str]] = {s: [] for s in samples}
        errors: dict[tuple[int, int], str] = {}
        for turn in range(max(len(p.turns) for p in batch)):
            active = [(i, j) for i, j in samples if turn < len(batch[i].turns) and (i, j) not in errors]
            requests = []
            for i, j in active:
                text = batch[i].turns[turn]
                programs[i, j] += f"# {text}\n"
                if chat:
                    intro = CHAT_INTRO if turn == 0 else ""
                    messages[i, j].append({"role": "user", "content": intro + text})
                context = messages[i, j] if chat else programs[i, j]
                requests.append(self._turn_request(batch[i], settings, context, j))
            for sample, texts in zip(active, generate_texts(backend, requests), strict=True):
                if isinstance(texts, str):
                    errors[sample] = texts
                    continue
                raw[sample].append(texts[0])
                if chat:
                    messages[sample].append({"role": "assistant", "content": texts[0]})
                programs[sample] += (extract_code(texts[0]).rstrip() if chat else truncate(texts[0])) + "\n\n"
        for i, problem in enumerate(batch):
            yield (
                problem,
                [
                    Generated("", "", errors[i, j])
                    if (i, j) in errors
                    else Generated(json.dumps(raw[i, j]), programs[i, j])
                    for j in range(settings.n)
                ],
            )

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        files = {"program.py": completion, "expected.json": json.dumps(problem.expected)}
        return {"main": Program(source=_check_source(), filename="check.py", files=files, exit_ok=False)}

    def reference(self, problem: Problem) -> str:
        """Not a solution: the turns as comments, then the expected output printed (the self-test)."""
        return PREFIX + "".join(f"# {turn}\n" for turn in problem.turns) + f"print({problem.expected!r})\n"

    def timeout_group(self, problem: Problem) -> str:
        return problem.task_id.rsplit("/", 1)[0]

    def judge(self, result: ExecResult) -> ExecResult:
        return syntax_error_verdict(result)


@functools.lru_cache(maxsize=1)
def _check_source() -> str:
    return CHECK_SOURCE.read_text(encoding="utf-8")


TASK = MtpbTask()
