"""User-facing errors.

Anything raised as a `CodelmError` is a problem with the user's input or environment, so the CLI
prints its message as one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

from typing import Any


class CodelmError(Exception):
    """A problem the user can fix; the message says what and how."""


class UnsupportedFeatureError(CodelmError):
    """The model family cannot do what was asked (e.g. fill-in-the-middle on CodeGen1)."""


class CheckpointError(CodelmError):
    """A checkpoint is missing, unreadable, or of a family we cannot tell."""


class RequestError(CodelmError):
    """A generation request is invalid (bad sampling values, prompt too long, ...)."""


def check_unicode(value: Any) -> None:
    """Raise ValueError if a string in ``value`` (nested lists, tuples and dict values included)
    holds an unpaired surrogate: JSON can escape one (``"\\ud800"``), and no tokenizer or UTF-8
    encoder takes it, so it is refused where text enters (a request, a benchmark file)."""
    if isinstance(value, str):
        if value.isascii():
            return
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            raise ValueError(
                f"holds an unpaired surrogate (U+{code:04X} at character {exc.start}), which is not "
                "valid Unicode text"
            ) from None
    elif isinstance(value, list | tuple):
        for item in value:
            check_unicode(item)
    elif isinstance(value, dict):
        for item in value.values():
            check_unicode(item)
