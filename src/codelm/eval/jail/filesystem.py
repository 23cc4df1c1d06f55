"""The filesystem a sandbox worker and its samples see, built inside its own mount namespace.

Every host mount is remounted read-only (repeating the flags the kernel locks, or the remount is
refused); ``/tmp``, ``/run`` and ``$HOME`` are covered by empty tmpfs with the paths the worker
needs bound back in; ``/dev`` is replaced by a tmpfs holding only null, zero, full, random and
urandom plus a private ``/dev/shm``, so no disk or other device node is reachable.
"""

from __future__ import annotations

import errno
import os

from . import linux

_DEV_NODES = ("null", "zero", "full", "random", "urandom")


def is_within(path: str, root: str) -> bool:
    """Is ``path`` equal to or below ``root``?"""
    return path == root or path.startswith(root.rstrip("/") + "/")


def _mountinfo() -> list[tuple[str, set[str]]]:
    """(mount point, per-mount options) for every mount, in mount order."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
            point = fields[4].encode().decode("unicode_escape")
            mounts.append((point, set(fields[5].split(","))))
    return mounts


def mount_tmpfs(target: str, options: str, keep_fds: dict[str, int]) -> None:
    """Cover ``target`` with an empty tmpfs, then bind the kept paths under it back in place."""
    linux.mount("tmpfs", target, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, options)
    for path, fd in sorted(keep_fds.items()):
        if path != target and is_within(path, target):
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "w").close()
            linux.mount(f"/proc/self/fd/{fd}", path, None, linux.MS_BIND | linux.MS_REC)


def minimal_dev(shm_bytes: int) -> None:
    """Replace /dev by a tmpfs with the harmless nodes bound in and a fresh /dev/shm."""
    node_fds = {name: os.open(f"/dev/{name}", os.O_PATH) for name in _DEV_NODES}
    try:
        linux.mount("tmpfs", "/dev", "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "size=64k,mode=755")
        for name, fd in node_fds.items():
            open(f"/dev/{name}", "w").close()
            linux.mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, linux.MS_BIND)
    finally:
        for fd in node_fds.values():
            os.close(fd)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm")
    linux.mount("tmpfs", "/dev/shm", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, f"size={shm_bytes},mode=1777")


def remount_readonly(writable: set[str], hidden: list[str]) -> list[str]:
    """Remount every visible mount read-only, except ``writable``; returns the failures."""
    failures = []
    for point, options in _mountinfo():
        if point in writable:
            continue
        flags = linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY
        for option in options:
            flags |= linux.MOUNT_OPTION_FLAGS.get(option, 0)
        try:
            linux.mount(None, point, None, flags)
        except OSError as exc:
            buried = any(is_within(point, h) and point != h for h in hidden)
            if not (buried and exc.errno in (errno.ENOENT, errno.EINVAL)):
                failures.append(f"{point}: {exc.strerror}")
            # else: a host mount under a hiding tmpfs; it is unreachable, nothing to protect.
    return failures


def root_is_readonly() -> bool:
    """Does creating a file at / fail with EROFS (the mount's answer, checked before permissions)?"""
    probe = "/.codelm-sandbox-write-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return exc.errno == errno.EROFS  # checked before permissions, so this is the mount's answer
    os.close(fd)
    os.unlink(probe)
    return False


def hide(targets: dict, keep_paths: set[str], scratch_bytes: int, info: dict) -> None:
    """Cover each target directory with an empty tmpfs (``/tmp`` gets ``scratch_bytes``), binding
    ``keep_paths`` back inside; records successes in ``info["hidden_paths"]``, failures in problems."""
    # Opened in the new mount namespace (a bind source must live in it), before anything is hidden.
    keep_fds = {path: os.open(path, os.O_PATH) for path in keep_paths}
    try:
        for target in targets:
            if target == "/" or any(is_within(target, h) for h in info["hidden_paths"]):
                continue
            if any(is_within(target, k) for k in keep_paths):
                info["problems"].append(f"not hiding {target}: it holds a path the sandbox needs")
                continue
            size = scratch_bytes if target == "/tmp" else 1 << 20
            try:
                mount_tmpfs(target, f"size={size},mode={'1777' if target == '/tmp' else '755'}", keep_fds)
            except OSError as exc:
                info["problems"].append(f"could not hide {target}: {exc}")
                continue
            info["hidden_paths"].append(target)
    finally:
        for fd in keep_fds.values():
            os.close(fd)
