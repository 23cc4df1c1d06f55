"""Thin ctypes wrappers over the Linux system calls the sandbox needs.

Python 3.11 has no ``os.unshare``/``mount``/``capset``, and the sandbox must not depend on
external binaries (``unshare``, ``mount``, ``capsh``) being installed, so the few calls we need
are made through libc directly. Every wrapper raises ``OSError`` with the failing call named;
nothing here decides policy.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# Per-mount options that a remount must repeat: the kernel refuses (EPERM) to clear them on a
# mount inherited from a more privileged namespace ("locked" flags, see mount_namespaces(7)).
MOUNT_OPTION_FLAGS = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# The interpreter is linked against libc, so its own symbol table has these calls; this avoids
# ctypes.util.find_library, which runs ldconfig in a subprocess (tens of milliseconds per worker).
_libc = ctypes.CDLL(None, use_errno=True)
_libc.malloc.restype = ctypes.c_void_p
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
MNT_DETACH = 2


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    """unshare(2): move the calling process into new namespaces."""
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare(0x{flags:x})")


def setns(fd: int, nstype: int) -> None:
    """setns(2): join the namespace that ``fd`` (an open /proc/PID/ns/* file) refers to."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({fd}, 0x{nstype:x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2); ``source`` may be ``/proc/self/fd/N`` to bind a path that is now hidden."""
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount({source!r}, {target!r}, {fstype!r}, 0x{flags:x})",
    )


def prctl(option: int, arg: int) -> None:
    """prctl(2) with a single integer argument."""
    _check(
        _libc.prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
        ),
        f"prctl({option}, {arg})",
    )


def set_process_name(name: str) -> None:
    """Name the calling process in ps/top (prctl PR_SET_NAME, at most 15 bytes)."""
    buffer = ctypes.create_string_buffer(name.encode()[:15])
    _check(
        _libc.prctl(
            ctypes.c_int(PR_SET_NAME), buffer, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
        ),
        "prctl(PR_SET_NAME)",
    )


def read_secret(fd: int, size: int) -> int:
    """Read ``size`` bytes from ``fd`` straight into fresh C memory; returns its address.

    No Python object ever holds the bytes (a sample could find one through ``gc`` or frames);
    reading them back takes ``read_memory``, that is, raw memory access."""
    address = _libc.malloc(ctypes.c_size_t(size))
    if not address:
        raise MemoryError("malloc failed")
    if os.readv(fd, [(ctypes.c_char * size).from_address(address)]) != size:
        raise OSError(f"short read of the sample's secret from fd {fd}")
    return address


def read_memory(address: int, size: int) -> bytes:
    """The ``size`` bytes at ``address`` (see ``read_secret``)."""
    return ctypes.string_at(address, size)


def umount(target: str, flags: int = 0) -> None:
    """umount2(2); ``MNT_DETACH`` detaches now and frees the file system once it is unused."""
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount2({target!r}, {flags})")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) (glibc has no wrapper): ``new_root`` becomes / of this mount namespace."""
    number = _PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {os.uname().machine}")
    _check(_libc.syscall(ctypes.c_long(number), new_root.encode(), put_old.encode()), "pivot_root")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_bounding_set() -> None:
    """Empty the capability bounding set and set no_new_privs, for this process and its children.

    The process keeps the capabilities it has now; what changes is that no ``execve`` (even of a
    setuid binary, even as uid 0) can grant any again. Children still need ``clear_capabilities``.
    """
    for cap in range(64):  # up to the kernel's last capability, which refuses the next one
        try:
            prctl(PR_CAPBSET_DROP, cap)
        except OSError as exc:
            if exc.errno != 22 or cap == 0:  # EINVAL: past cap_last_cap (/proc may not be mounted)
                raise
            break
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def clear_capabilities() -> None:
    """Empty the effective, permitted and inheritable capability sets of the calling thread.

    Inside a user namespace the process is "root" with every capability over that namespace,
    enough to remount the read-only filesystem writable again; after this it has none.
    """
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def write_id_maps(uid: int, gid: int) -> None:
    """Map the caller's uid/gid to 0 inside a fresh user namespace (what ``unshare -r`` does)."""
    for path, text in (
        ("/proc/self/setgroups", "deny"),
        ("/proc/self/uid_map", f"0 {uid} 1"),
        ("/proc/self/gid_map", f"0 {gid} 1"),
    ):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
