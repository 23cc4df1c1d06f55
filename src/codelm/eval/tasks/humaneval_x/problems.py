"""HumanEval-X problems: reading ``humaneval_<lang>.jsonl(.gz)`` and what a model is asked to continue.

The files are CodeGeeX's (THUDM/CodeGeeX ``codegeex/benchmark/humaneval-x/<lang>/data``), 164 problems
per language. Every record has ``task_id`` ("CPP/0"), ``prompt``, ``declaration``,
``canonical_solution``, ``test`` and ``example_test``; Go adds ``import`` (the prompt's import block,
which the harness moves) and ``test_setup`` (package clause and test imports). Rust's
``example_test`` is the string "None" in every record; it is read as absent.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from codelm.jsonl import iter_records

LANGUAGES = ("python", "cpp", "java", "js", "go", "rust")
# task_id prefix per language, as in the data files ("JavaScript/0")
TASK_PREFIX = {
    "python": "Python",
    "cpp": "CPP",
    "java": "Java",
    "js": "JavaScript",
    "go": "Go",
    "rust": "Rust",
}
# What the Rust harness puts before the declaration (CodeGeeX evaluate_humaneval_x.py,
# process_humaneval_test): the check is a `cargo test` of a binary crate, which needs a main.
RUST_MAIN = "\nfn main(){ \n } \n"
_REQUIRED = ("task_id", "prompt", "declaration", "canonical_solution", "test")
# Problems whose own canonical solution fails its own test, so no score on them means anything.
# They are listed with the reason (as EvalPlus lists its removals) and dropped by load_problems.
EXCLUDED: dict[str, dict[str, str]] = {
    "python": {},
    "cpp": {},
    "java": {},
    "js": {
        "JavaScript/112": "canonical solution returns `(z, false)`, a comma expression (just the boolean), "
        "where the test expects the array [string, boolean]",
        "JavaScript/155": "canonical solution returns [0, 0] for evenOddCount(0); the test expects [1, 0]",
    },
    "go": {},
    "rust": {},
}


@dataclass(frozen=True)
class Problem:
    task_id: str
    language: str
    prompt: str
    declaration: str
    canonical_solution: str
    test: str
    example_test: str = ""  # "" when the record has none
    imports: str = ""  # Go only: the record's ``import`` block, removed from the prompt when checking
    test_setup: str = ""  # Go only: ``package main`` plus the test's imports (testing, testify)


def check_language(language: str) -> str:
    """``language`` if it is one of ``LANGUAGES``, else a ValueError that suggests the closest."""
    if language not in LANGUAGES:
        close = difflib.get_close_matches(language, LANGUAGES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown HumanEval-X language {language!r} (one of {', '.join(LANGUAGES)}){hint}")
    return language


def data_file(path_or_dir: str | Path, language: str) -> Path:
    """The problem file: ``path_or_dir`` itself, or ``humaneval_<language>.jsonl(.gz)`` inside it."""
    path = Path(path_or_dir)
    if not path.is_dir():
        return path
    for name in (f"humaneval_{language}.jsonl.gz", f"humaneval_{language}.jsonl"):
        if (path / name).exists():
            return path / name
    raise FileNotFoundError(f"no humaneval_{language}.jsonl(.gz) in {path}")


def _optional(record: dict, key: str) -> str:
    value = record.get(key)
    return "" if value in (None, "None") else value


def problem_from_record(record: dict, language: str, origin: str = "record") -> Problem:
    """One record of a ``humaneval_<language>`` file as a Problem (ValueError names what is wrong)."""
    missing = [key for key in _REQUIRED if key not in record]
    if language == "go":
        missing += [key for key in ("import", "test_setup") if key not in record]
    if missing:
        raise ValueError(f"{origin}: record {record.get('task_id', '?')} lacks {missing}")
    prefix = TASK_PREFIX[check_language(language)] + "/"
    if not record["task_id"].startswith(prefix):
        raise ValueError(f"{origin}: task {record['task_id']!r} is not a {language} problem ({prefix}N)")
    return Problem(
        task_id=record["task_id"],
        language=language,
        prompt=record["prompt"],
        declaration=record["declaration"],
        canonical_solution=record["canonical_solution"],
        test=record["test"],
        example_test=_optional(record, "example_test"),
        imports=_optional(record, "import"),
        test_setup=_optional(record, "test_setup"),
    )


def load_problems(path_or_dir: str | Path, language: str, *, include_excluded: bool = False) -> list[Problem]:
    """One language's problems in file order, from a file or from the directory holding them.

    The ``EXCLUDED`` ones (broken upstream) are left out unless ``include_excluded``."""
    check_language(language)
    path = data_file(path_or_dir, language)
    problems = [problem_from_record(record, language, str(path)) for record in iter_records(path)]
    if not problems:
        raise ValueError(f"{path}: no problems found")
    if include_excluded:
        return problems
    return [p for p in problems if p.task_id not in EXCLUDED[language]]


def generation_prompt(problem: Problem) -> str:
    """The text a model continues. It is the record's ``prompt`` except for Rust, whose prompt is
    only the doc comment: the harness checks ``RUST_MAIN + declaration + prompt + completion``, so
    the model is given that prefix (see THUDM/CodeGeeX#76)."""
    if problem.language == "rust":
        return RUST_MAIN + problem.declaration + problem.prompt
    return problem.prompt
