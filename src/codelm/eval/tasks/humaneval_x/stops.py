"""Where a HumanEval-X completion ends: CodeGeeX's stop words, and its brace rule for the rest.

CodeGeeX (``codegeex/benchmark/utils.py`` at 593ef9e2: ``is_code_generation_finished`` and
``cleanup_code``) stops Python and Go on stop words, and C++, Java, JavaScript on braces: a
generation is finished once it has one more ``}`` than ``{`` (it closed the function the prompt
opened); cleanup then cuts after the last ``}`` and, for Java, adds the ``}`` closing ``class
Solution``. Rust was added to the harness later without a rule of its own, and a brace rule would
be wrong for it: six canonical solutions (Rust/10, 32, 38, 50, 137, 145) close the function the
prompt opened and then define more items, so Rust generations are left as they are.
``STOPS`` suits an engine's stop sequences; ``truncate`` applies the whole rule to a raw generation.
"""

from __future__ import annotations

STOPS: dict[str, list[str]] = {
    "python": ["\ndef", "\nclass", "\nif", "\n#", "\nprint", "\nassert"],
    "cpp": [],
    "java": [],
    "js": [],
    "go": ["\n//", "\nfunc main("],
    "rust": [],
}
BRACE_LANGUAGES = ("cpp", "java", "js")


def close_of_function(text: str) -> int | None:
    """Index just past the ``}`` that closes the function the prompt opened (depth 1 to 0), if any."""
    depth = 1
    for index, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def truncate(language: str, generation: str) -> str:
    """A raw generation cut where CodeGeeX's generation would have stopped, then cleaned up as it is.

    Python and Go: cut at the first stop word (the engine stops there). C++, Java, JavaScript: cut
    after the ``}`` that closes the function; Java then gets ``\\n}`` to close ``class Solution``.
    Rust: unchanged.
    """
    if language not in STOPS:
        raise ValueError(f"unknown HumanEval-X language {language!r}")
    text = generation
    for stop in STOPS[language]:
        if stop in text:
            text = text[: text.index(stop)]
    if language == "go" and "}" in text:
        text = text[: text.rfind("}") + 1]
    if language in BRACE_LANGUAGES:
        end = close_of_function(text)
        if end is not None:
            text = text[:end]
        elif "}" in text:
            text = text[: text.rfind("}") + 1]
        if language == "java" and text.count("{") + 1 == text.count("}"):
            text += "\n}"
    return text
