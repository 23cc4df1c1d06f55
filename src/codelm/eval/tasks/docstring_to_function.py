"""Docstring -> function: does the model write a function that passes the doctest it was not shown?

Problems are a JSONL of ``{task_id, prompt, module, name, reference}`` records, given with
``--data docstring-to-function=FILE`` (or as ``docstring-to-function.jsonl`` in ``--data-dir``);
``codelm.recipes.derive.doctest_problems`` makes them from a corpus: ``prompt`` is the SFT pairs'
user turn ("Write a Python function `f(x)` that: <first docstring line>"), ``reference`` the
function's source as it appears in ``module``, and its docstring holds examples that pass. There is
no public default (the functions must be ones the model did not train on).

Chat mode sends ``prompt`` as the one user message (what SFT trained on) and takes the code of the
reply (``extract_code``: the fence defining ``name``, else the reply). Base mode continues a
HumanEval-style stub: the reference's signature with the instruction as its one-line docstring
(the text after "that: ", else the whole prompt), stopped at HumanEval's stop strings. Either way
the candidate is stub + completion (a whole function from a chat reply redefines the stub, as in
HumanEval's chat mode), and the check runs the module with the reference replaced by the candidate,
then the *reference's* doctest against the candidate's function (its ``__doc__`` is set to the
reference's first, so a candidate without a docstring is still tested), through
``codelm.recipes.derive.doctest_program``: the same runner that selected the problems. pass@k and
``syntax_valid`` (the candidate compiles) are reported as for HumanEval.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass
from typing import Any

from ..generation import GenRequest, GenSettings
from ..program import Program
from .base import Task
from .humaneval import STOPS

_INSTRUCTION = re.compile(r"^Write a Python function `[^`]*` that:\s*(.+)$", re.S)


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str  # the user turn
    module: str  # the source module, which holds `reference` verbatim
    name: str
    reference: str  # the function's source; passes its doctest
    stub: str  # signature + the instruction as docstring (base mode's prompt)
    doctest: str  # the reference's docstring, whose examples are the check

    @property
    def entry_point(self) -> str:  # what extract_code looks for in a chat reply
        return self.name


def stub(reference: ast.FunctionDef, prompt: str) -> str:
    """The reference's signature with the instruction as its docstring, ready to be continued."""
    match = _INSTRUCTION.match(prompt.strip())
    words = " ".join((match.group(1) if match else prompt).split()).replace('"""', "'''")
    header = copy.deepcopy(reference)
    header.body, header.decorator_list = [ast.Expr(ast.Constant(words))], []
    return ast.unparse(header) + "\n"


def problem_from_record(record: dict[str, Any], number: int) -> Problem:
    fields = ("prompt", "module", "name", "reference")
    if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in fields):
        raise ValueError(f"record {number} needs string fields {', '.join(fields)}")
    task_id, name, reference = str(record.get("task_id", number)), record["name"], record["reference"]
    if reference not in record["module"]:
        raise ValueError(f"{task_id}: its reference is not part of its module")
    try:
        tree = ast.parse(reference)
    except SyntaxError as exc:
        raise ValueError(f"{task_id}: the reference does not parse ({exc.msg})") from None
    fn = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(fn, ast.FunctionDef) or fn.name != name:
        raise ValueError(f"{task_id}: the reference must be one function named {name}")
    doctest = ast.get_docstring(fn, clean=False)
    if not doctest or ">>>" not in doctest:
        raise ValueError(f"{task_id}: the reference's docstring has no doctest examples")
    return Problem(
        task_id, record["prompt"], record["module"], name, reference, stub(fn, record["prompt"]), doctest
    )


class DocstringToFunctionTask(Task):
    name = "docstring-to-function"
    title = "Docstring to function (derived doctests)"
    file_names = ("docstring-to-function.jsonl",)
    stops = STOPS

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        problems = [problem_from_record(r, n) for n, r in enumerate(records, start=1)]
        ids = [p.task_id for p in problems]
        if len(set(ids)) != len(ids):
            raise ValueError("task ids repeat")
        return problems

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        if settings.mode == "chat":
            message = {"role": "user", "content": problem.prompt}
            return self.build_request(problem, settings, "chat", messages=(message,))
        return self.build_request(problem, settings, "completion", prompt=problem.stub)

    def candidate_source(self, problem: Problem, completion: str) -> str:
        return problem.stub + completion

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        from codelm.recipes.derive import doctest_program

        module = problem.module.replace(problem.reference, self.candidate_source(problem, completion), 1)
        # the reference's examples test whatever the candidate's `name` is, docstring or not
        module += f"\n\n{problem.name}.__doc__ = {problem.doctest!r}\n"
        return {"main": Program(source=doctest_program(module, problem.name), run_name="codelm_derive")}

    def reference(self, problem: Problem) -> str:
        return problem.reference  # a whole function: it redefines the stub


TASK = DocstringToFunctionTask()
