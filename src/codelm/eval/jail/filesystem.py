"""The filesystem a sandbox worker and its samples see, built inside its own mount namespace.

The view (``build_view``, as bubblewrap and nsjail build theirs): a fresh, empty tmpfs becomes
the root (``pivot_root``), holding read-only bind mounts of the system's toolchain directories
(``SYSTEM_PATHS``: /usr and the /bin, /lib* links into it), a few files of ``/etc`` that the
dynamic linker and toolchains read (``ETC_ENTRIES``), the Python installation and the caller's
``keep`` paths, and nothing else: no checkout, no home directory, no host ``/tmp`` or ``/run``
(so no host Unix socket), no ``/sys``. ``/dev`` holds only null, zero, full, random, urandom.
Samples get a size-capped tmpfs at ``/tmp`` (``fresh_scratch``; ``/dev/shm`` points into it) that
is empty when each one starts: after a sample that wrote only in its work directory, the worker
deletes that; after any other, it detaches the tmpfs with everything in it and mounts a new one.

Fallback when the kernel refuses the pivot (``hide``): every host mount is remounted read-only
(repeating the flags the kernel locks, or the remount is refused) and ``/tmp``, ``/run`` and
``$HOME`` are covered by empty tmpfs with the paths the worker needs bound back in.
"""

from __future__ import annotations

import errno
import glob
import os

from . import linux

_DEV_NODES = ("null", "zero", "full", "random", "urandom")
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The dynamic linker's cache and configuration, Debian's alternatives (java, cc, ... are links
# through them), user and group names, the time zone, and the configuration the toolchains of the
# multi-language benchmarks read there (Debian links their install trees into /etc: the JDK's
# conf, R_HOME/etc, mono's config; without it mcs cannot even find its source file).
ETC_ENTRIES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "passwd",
    "group",
    "nsswitch.conf",
    "localtime",
    "timezone",
    "ssl",
    "java-*",
    "mono",
    "R",
    "php",
    "perl",
    "racket",
    "python3*",
)
SHM_DIR = ".shm"  # /dev/shm links to /tmp/.shm, so it is fresh with every sample's /tmp


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


def minimal_dev(root: str = "") -> None:
    """Mount at ``root``/dev a tmpfs with the harmless nodes bound in; /dev/shm links into /tmp."""
    dev = root + "/dev"
    node_fds = {name: os.open(f"/dev/{name}", os.O_PATH) for name in _DEV_NODES}
    try:
        os.makedirs(dev, exist_ok=True)
        linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "size=64k,mode=755")
        for name, fd in node_fds.items():
            open(f"{dev}/{name}", "w").close()
            linux.mount(f"/proc/self/fd/{fd}", f"{dev}/{name}", None, linux.MS_BIND)
    finally:
        for fd in node_fds.values():
            os.close(fd)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("shm", f"/tmp/{SHM_DIR}"),
    ):
        os.symlink(target, f"{dev}/{name}")


def fresh_scratch(size: int) -> None:
    """Cover /tmp with a new, empty tmpfs of ``size`` bytes (with /tmp/.shm for /dev/shm); undo
    with ``linux.umount("/tmp", linux.MNT_DETACH)``, which frees everything written to it."""
    flags = linux.MS_NOSUID | linux.MS_NODEV
    linux.mount("tmpfs", "/tmp", "tmpfs", flags, f"size={size},mode=1777")
    os.mkdir(f"/tmp/{SHM_DIR}")
    os.chmod(f"/tmp/{SHM_DIR}", 0o1777)


def _place(source: str, target: str) -> bool:
    """Make ``source`` appear at ``target``: a link as the same link, else a recursive bind."""
    if os.path.islink(source):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.readlink(source), target)
        return True
    if not os.path.exists(source):
        return False
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "w").close()
    linux.mount(source, target, None, linux.MS_BIND | linux.MS_REC)
    return True


def view_paths(keep: list[str]) -> list[str]:
    """The host paths a view shows: system directories, the /etc entries, ``keep``; no path
    that another one already shows."""
    etc = [p for pattern in ETC_ENTRIES for p in sorted(glob.glob(f"/etc/{pattern}"))]
    shown: list[str] = []
    for path in sorted(dict.fromkeys([*SYSTEM_PATHS, *etc, *keep])):
        if path != "/" and not any(is_within(path, s) and not os.path.islink(s) for s in shown):
            shown.append(path)
    return shown


def build_view(keep: list[str], tmp_bytes: int) -> list[str]:
    """Pivot into a fresh root showing only ``view_paths(keep)``; returns the paths shown.

    The caller remounts the result read-only (``remount_readonly``) and covers the host's /proc,
    bound in for that, with its own PID namespace's."""
    linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=1m,mode=700")
    root = "/tmp/root"
    os.mkdir(root)
    linux.mount("tmpfs", root, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=1m,mode=755")
    shown = [path for path in view_paths(keep) if _place(path, root + path)]
    minimal_dev(root)
    # The host's /proc, until the worker's PID namespace mounts its own over it (the kernel lets
    # a user namespace mount a proc only where a fully visible one exists)
    os.mkdir(root + "/proc")
    linux.mount("/proc", root + "/proc", None, linux.MS_BIND | linux.MS_REC)
    os.mkdir(root + "/tmp")
    flags = linux.MS_NOSUID | linux.MS_NODEV
    linux.mount("tmpfs", root + "/tmp", "tmpfs", flags, f"size={tmp_bytes},mode=1777")
    os.mkdir(f"{root}/tmp/{SHM_DIR}", 0o1777)
    os.chmod(f"{root}/tmp/{SHM_DIR}", 0o1777)
    os.mkdir(root + "/.old")
    linux.pivot_root(root, root + "/.old")
    os.chdir("/")
    linux.umount("/.old", linux.MNT_DETACH)
    os.rmdir("/.old")
    return shown


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
