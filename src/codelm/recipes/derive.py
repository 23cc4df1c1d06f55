"""Instruction, preference and pretraining data derived from a code corpus, for recipes that have none.

The tiny recipe has no human-written instructions, so it makes them from the code it trained on:

* SFT pairs (`docstring -> function`): every top-level function with a docstring becomes a user turn
  "Write a Python function `name(args)` that: <docstring>" and an assistant turn with the function's
  source without its docstring. Real recipes point at their own instruction data instead.
* Function documents: the same functions as written, one per document, for a pretraining stage
  (`data: derive:functions`) that trains FIM on HumanEval-shaped code.
* DPO pairs (`passes its doctest` vs `corrupted`): functions whose doctest examples pass when the
  function runs on its own (checked in codelm's sandbox) are the chosen reply; a mutated copy whose
  doctest then fails (an operator flipped, a comparison inverted, a constant changed; also checked)
  is the rejected one. Only pairs whose verdicts were both confirmed are kept.
* Self-play infilling pairs (`as written` vs `the model's own`): single lines of the function
  documents removed (`infill_problems`, in the `fim-exact-match` task's record shape), infilled by
  the model a DPO stage starts from (through `codelm eval`), and each line it gets wrong becomes a
  plain-text pair, the line as written chosen over the model's (`self_play_pairs`): SPIN's pairs
  (Chen et al. 2024, "Self-Play Fine-Tuning Converts Weak Language Models to Strong Language
  Models"), which need no judge, made where the recipe's model writes code. The runner makes them
  in a `self-play:STAGE` step right before the stage (recipes/runner.py).

Both are plain iterators over documents' text, written as the JSONL `codelm train` reads.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from codelm.data.functions import is_documented, segment, source_lines, top_level_functions

_MUTATIONS: list[tuple[type, type]] = [
    (ast.Add, ast.Sub),
    (ast.Sub, ast.Add),
    (ast.Mult, ast.FloorDiv),
    (ast.Lt, ast.GtE),
    (ast.Gt, ast.LtE),
    (ast.LtE, ast.Gt),
    (ast.GtE, ast.Lt),
    (ast.Eq, ast.NotEq),
    (ast.NotEq, ast.Eq),
    (ast.And, ast.Or),
    (ast.Or, ast.And),
]


def _without_docstring(fn: ast.FunctionDef) -> str:
    import copy

    clone = copy.deepcopy(fn)
    if ast.get_docstring(clone) is not None:
        clone.body = clone.body[1:] or [ast.Pass()]
    return ast.unparse(clone)


class DocumentedFunction(NamedTuple):
    """A public top-level function with a docstring, as the SFT pairs and function documents use it."""

    prompt: str  # the SFT pair's user turn, and the key the held-out shares are drawn by
    code: str  # the function without its docstring: the SFT pair's assistant turn
    source: str  # the function as written (signature, docstring, body; decorators left out)

    def sft_pair(self) -> dict[str, Any]:
        """{"messages": [user, assistant]}: docstring -> function."""
        return {
            "messages": [
                {"role": "user", "content": self.prompt},
                {"role": "assistant", "content": self.code},
            ]
        }

    def document(self) -> str:
        """The function on its own as a pretraining document: shaped like a HumanEval problem and its
        solution. A stage that trains FIM on these (after SFT, which unlearns a fresh FIM skill) is
        what moved the tiny recipe's single-line infilling exact match (docs/recipes.md, "Function
        documents"); the modules they come from hold them among classes and helpers."""
        return self.source + "\n"


def documented_functions(
    texts: Iterable[str], max_functions: int = 2000, max_chars: int = 1500
) -> Iterator[DocumentedFunction]:
    """Every public top-level function with a docstring of 20+ characters (at most `max_functions`,
    none whose code without the docstring is over `max_chars`)."""
    made = 0
    for text in texts:
        lines = None
        for fn in top_level_functions(text):
            if not is_documented(fn):
                continue
            doc = ast.get_docstring(fn)
            code = _without_docstring(fn)
            if len(code) > max_chars:
                continue
            if made == max_functions:
                return
            made += 1
            lines = lines or source_lines(text)  # once per module (codelm.data.functions)
            signature = f"{fn.name}({ast.unparse(fn.args)})"
            prompt = f"Write a Python function `{signature}` that: {doc.strip().splitlines()[0]}"
            yield DocumentedFunction(prompt, code, segment(lines, fn))


def sft_pairs(texts: Iterable[str], max_pairs: int = 2000, max_chars: int = 1500) -> Iterator[dict[str, Any]]:
    """{"messages": [user, assistant]} for documented top-level functions."""
    return (f.sft_pair() for f in documented_functions(texts, max_pairs, max_chars))


def mutate(fn_source: str, rng: random.Random) -> str | None:
    """A copy of the function with one operator swapped, or None when nothing can be swapped."""
    tree = ast.parse(fn_source)
    sites = [
        (node, field, i, new)
        for node in ast.walk(tree)
        for field, value in ast.iter_fields(node)
        for i, op in enumerate(value if isinstance(value, list) else [value])
        for old, new in _MUTATIONS
        if type(op) is old and field in ("op", "ops")
    ]
    if not sites:
        return None
    node, field, i, new = rng.choice(sites)
    if field == "ops":
        node.ops[i] = new()
    else:
        setattr(node, field, new())
    return ast.unparse(tree)


def infill_problems(
    texts: Iterable[str],
    *,
    max_problems: int,
    seed: int = 0,
    fits: Callable[[str, str, str], bool] | None = None,
) -> list[dict[str, Any]]:
    """One single-line infilling problem per function document (texts in a seeded order): a line of
    the body after the docstring, neither blank nor a comment, removed; records of the
    `fim-exact-match` task (`prompt` the code above, `suffix` below, `canonical_solution` the line).
    `fits(prefix, suffix, line)` drops problems whose pair would not fit the training rows (a cut
    pair teaches nothing: both replies are cut away)."""
    rng = random.Random(seed)
    order = list(texts)
    rng.shuffle(order)
    problems: list[dict[str, Any]] = []
    for k, text in enumerate(order):
        if len(problems) == max_problems:
            break
        fn = next(top_level_functions(text), None)
        if fn is None:
            continue
        body = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
        if not body:
            continue
        lines = source_lines(text)
        candidates = [
            i
            for i in range(body[0].lineno - 1, fn.end_lineno)
            if lines[i].strip() and not lines[i].lstrip().startswith("#") and lines[i].endswith("\n")
        ]
        if not candidates:
            continue
        i = rng.choice(candidates)
        prefix, line, suffix = "".join(lines[:i]), lines[i], "".join(lines[i + 1 :])
        if fits is not None and not fits(prefix, suffix, line):
            continue
        problems.append(
            {
                "task_id": f"SelfPlay/{k}/L{i}",
                "entry_point": fn.name,
                "prompt": prefix,
                "suffix": suffix,
                "canonical_solution": line,
                "test": "",
            }
        )
    return problems


def self_play_pairs(
    problems: Iterable[dict[str, Any]], samples: Iterable[dict[str, Any]], render: Callable[[str, str], str]
) -> list[dict[str, Any]]:
    """Plain-text DPO pairs from the model's infills of `infill_problems` (`codelm eval` samples of
    `fim-exact-match`): where the model's line is not the line as written and not empty, the
    written line is chosen over it, after the family's infilling prompt (`render(prefix, suffix)`).
    Empty infills are left out: with them (27 more pairs besides the tiny recipe's 756) the run matched
    one problem of the 200 fewer (docs/recipes.md, "Self-play")."""
    by_id = {p["task_id"]: p for p in problems}
    pairs = []
    for sample in samples:
        problem = by_id.get(sample["task_id"])
        if problem is None or sample.get("passed") or not sample["completion"].strip():
            continue
        pairs.append(
            {
                "prompt": render(problem["prompt"], problem["suffix"]),
                "chosen": problem["canonical_solution"],
                "rejected": sample["completion"],
                "chat": False,
            }
        )
    return pairs


def doctest_program(module: str, name: str) -> str:
    """The whole module, then a runner for `name`'s doctest that exits non-zero when one fails.

    Running inside its own module gives the function its imports and helpers; the module runs
    under a name other than __main__, so its script block does not."""
    return (
        f"{module}\n\n"
        "import doctest as _doctest, sys as _sys\n"
        f"_runner = _doctest.DocTestRunner(optionflags=_doctest.ELLIPSIS)\n"
        f"for _t in _doctest.DocTestFinder(recurse=False).find({name}, globs=dict(globals())):\n"
        "    _runner.run(_t, out=lambda s: None)\n"
        "_sys.exit(1 if _runner.failures or not _runner.tries else 0)\n"
    )


def doctest_candidates(texts: Iterable[str], max_chars: int = 1500) -> Iterator[tuple[str, str, str]]:
    """(module text, function name, function source) for functions whose docstrings hold examples."""
    for text in texts:
        lines = None
        for fn in top_level_functions(text):
            doc = ast.get_docstring(fn) or ""
            if ">>>" not in doc or fn.decorator_list:
                continue
            lines = lines or source_lines(text)  # once per module (codelm.data.functions)
            source = segment(lines, fn)
            if source and len(source) <= max_chars:
                yield text, fn.name, source


def dpo_pairs(
    texts: Iterable[str], *, pool, max_pairs: int = 500, seed: int = 0, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Preference pairs whose chosen reply passes its doctest and rejected reply fails it.

    `pool` is a started `codelm.eval.execution.ExecutionPool` (the caller opted in to executing
    the corpus's code)."""
    from codelm.eval.program import Limits, Program

    rng = random.Random(seed)
    candidates = []
    for module, name, source in doctest_candidates(texts):
        good = ast.unparse(ast.parse(source))
        bad = mutate(good, rng)
        if bad is not None and bad != good:
            candidates.append((module, name, source, good, bad))
    programs = []
    for module, name, source, _, bad in candidates:
        programs.append(Program(source=doctest_program(module, name), run_name="codelm_derive"))
        programs.append(
            Program(source=doctest_program(module.replace(source, bad, 1), name), run_name="codelm_derive")
        )
    results = pool.map(programs, Limits(timeout=timeout)) if programs else []
    pairs = []
    for k, (_, name, _, good, bad) in enumerate(candidates):
        if results[2 * k].passed and not results[2 * k + 1].passed:
            doc = (ast.get_docstring(ast.parse(good).body[0]) or "").strip().splitlines()[0]
            pairs.append(
                {"prompt": f"Write a Python function `{name}` that: {doc}", "chosen": good, "rejected": bad}
            )
            if len(pairs) >= max_pairs:
                break
    return pairs


def doctest_problems(
    texts: Iterable[str],
    *,
    pool,
    max_problems: int = 500,
    timeout: float = 5.0,
    keep: Callable[[str], bool] | None = None,
) -> list[dict[str, Any]]:
    """Problems of `codelm eval`'s `docstring-to-function` task: functions whose doctest passes.

    Each record is {task_id, prompt, module, name, reference}: the SFT pairs' user turn for the
    function, its module (which the check runs it in), and its source (which passes its doctest,
    checked here in the sandbox, as `dpo_pairs` checks its chosen replies). `pool` is a started
    `codelm.eval.execution.ExecutionPool`. `keep(prompt)` picks problems before any doctest runs
    (the recipe keeps a hashed share of the training split's functions)."""
    from codelm.eval.program import Limits, Program

    found = []  # (module, name, source, prompt)
    for module, name, source in doctest_candidates(texts):
        fn = ast.parse(source).body[0]
        assert isinstance(fn, ast.FunctionDef)  # doctest_candidates yields top-level functions
        doc = (ast.get_docstring(fn) or "").strip().splitlines()[0]
        prompt = f"Write a Python function `{name}({ast.unparse(fn.args)})` that: {doc}"  # sft_pairs'
        if not doc.startswith(">>>") and (keep is None or keep(prompt)):  # else a test is the instruction
            found.append((module, name, source, prompt))
    programs = [Program(source=doctest_program(m, name), run_name="codelm_derive") for m, name, *_ in found]
    results = pool.map(programs, Limits(timeout=timeout)) if programs else []
    problems: list[dict[str, Any]] = []
    for (module, name, source, prompt), result in zip(found, results, strict=True):
        if result.passed:
            task_id = f"doctest/{len(problems)}/{name}"
            problems.append(
                {"task_id": task_id, "prompt": prompt, "module": module, "name": name, "reference": source}
            )
        if len(problems) >= max_problems:
            break
    return problems
