"""Framing between the parent process and a sandbox worker: length-prefixed JSON over pipes.

JSON rather than pickle on purpose: the parent never unpickles anything that crossed into the
sandbox side, so a compromised worker can at worst send a wrong verdict, not run code in the
parent. Both sides import this module (the worker under a private package name), so it must
stay stdlib-only.
"""

from __future__ import annotations

import json
import os
import struct

_HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


class ProtocolError(RuntimeError):
    """The other side closed the pipe or sent something that is not a frame."""


def encode_frame(message: dict) -> bytes:
    """One JSON object as a frame: 4-byte big-endian length, then UTF-8 JSON."""
    payload = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(payload)) + payload


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_frame(fd: int, message: dict) -> None:
    """Send one JSON object; blocks until fully written."""
    write_all(fd, encode_frame(message))


def _read_exact(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ProtocolError(f"pipe closed with {remaining} of {size} bytes unread")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict | None:
    """Receive one JSON object, or ``None`` on a clean end of stream."""
    header = os.read(fd, _HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        header += _read_exact(fd, _HEADER.size - len(header))
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes exceeds the {MAX_FRAME}-byte limit")
    message = json.loads(_read_exact(fd, size))
    if not isinstance(message, dict):
        raise ProtocolError(f"expected a JSON object, got {type(message).__name__}")
    return message
