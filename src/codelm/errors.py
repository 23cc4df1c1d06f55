"""User-facing errors.

Anything raised as a `CodelmError` is a problem with the user's input or environment, so the CLI
prints its message as one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class CodelmError(Exception):
    """A problem the user can fix; the message says what and how."""


class UnsupportedFeatureError(CodelmError):
    """The model family cannot do what was asked (e.g. fill-in-the-middle on CodeGen1)."""


class CheckpointError(CodelmError):
    """A checkpoint is missing, unreadable, or of a family we cannot tell."""


class RequestError(CodelmError):
    """A generation request is invalid (bad sampling values, prompt too long, ...)."""
