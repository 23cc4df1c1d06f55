"""One-time isolation of a sandbox worker: user, network and mount namespaces, read-only host.

Called once when a worker starts, before it runs any sample. What it builds (each step is
attempted, and the returned dict says what actually took effect):

* a user namespace mapping the caller's uid/gid to 0 (what ``unshare -r`` does), which is what
  lets an unprivileged process create the other namespaces; when the caller is root, a helper left
  outside also maps uid/gid ``SAMPLE_UID`` to an unprivileged host id (nobody) for the samples;
* a PID namespace whose init (the worker, see ``as_namespace_init``) has a private ``/proc`` and
  a pid_max that caps how many processes samples can create;
* a network namespace with only a downed loopback: no sockets reach the host or the internet;
* a private mount namespace whose root is a minimal read-only view of the host (the toolchain
  directories, the Python installation, the caller's ``keep`` paths; see ``filesystem``), with a
  minimal ``/dev`` (null, zero, full, random, urandom) so no disk device can be opened; where the
  kernel refuses that, every host mount is remounted read-only and ``/tmp``, ``/run`` and
  ``$HOME`` are hidden under empty tmpfs instead. If user namespaces are unavailable the worker
runs unisolated in a private temp directory and says so.
"""

from __future__ import annotations

import os
import socket
import tempfile

from . import filesystem, linux


def unisolated(reason: str) -> dict:
    """The fallback: no namespaces, work directories in a private host temp directory."""
    scratch = tempfile.mkdtemp(prefix="codelm-sandbox-")
    os.chmod(scratch, 0o711)  # samples (maybe another uid) reach their own directory only
    return {
        "user_namespace": False,
        "network_isolated": False,
        "readonly_root": False,
        "minimal_dev": False,
        "hidden_paths": [],
        "problems": [reason],
        "scratch": scratch,
    }


SAMPLE_UID = 1  # uid of samples inside the namespace when an unprivileged host id is mapped to it


def _start_id_mapper(map_root_to: int) -> tuple[int, int]:
    """Fork a helper that stays root outside, to write our uid/gid maps once we have unshared.

    A process may only map its own id into a namespace it created; mapping a second, unprivileged
    host id (for the samples) takes CAP_SETUID in the parent namespace, which only a process left
    outside still has. Returns (helper pid, pipe to release it with)."""
    uid, gid, target = os.getuid(), os.getgid(), os.getpid()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write_fd)
        if os.read(read_fd, 1) != b"x":  # the worker could not unshare: nothing to map
            os._exit(1)
        try:
            for name, own in (("uid_map", uid), ("gid_map", gid)):
                with open(f"/proc/{target}/{name}", "w") as f:
                    f.write(f"0 {own} 1\n{SAMPLE_UID} {map_root_to} 1\n")
        except OSError:
            os._exit(1)
        os._exit(0)
    os.close(read_fd)
    return pid, write_fd


def _enter_namespaces(info: dict, map_root_to: int | None) -> bool:
    """unshare user+mount+network (+PID) namespaces, uid 0 inside = us outside; False if impossible.

    Started as root with ``map_root_to``, uid ``SAMPLE_UID`` inside is that unprivileged host id:
    samples switch to it, so they get no root file permissions anywhere on the host and RLIMIT_NPROC
    (from which the kernel exempts root) applies to them.
    """
    uid, gid = os.getuid(), os.getgid()
    mapper = _start_id_mapper(map_root_to) if uid == 0 and map_root_to is not None else None
    namespaces = linux.CLONE_NEWUSER | linux.CLONE_NEWNS | linux.CLONE_NEWNET
    try:
        try:  # with a PID namespace too: the worker's next fork becomes its init (see worker.main)
            linux.unshare(namespaces | linux.CLONE_NEWPID)
            info["worker_pid_namespace"] = True
        except OSError as exc:
            info["problems"].append(f"no PID namespace ({exc.strerror}): stray processes possible")
            linux.unshare(namespaces)
    except OSError as exc:
        if mapper is not None:
            os.close(mapper[1])
            os.waitpid(mapper[0], 0)
        fallback = unisolated(
            f"user/network/mount namespaces unavailable ({exc}): samples run WITHOUT "
            "network or filesystem isolation"
        )
        fallback["problems"] = info["problems"] + fallback["problems"]
        info.clear()
        info.update(fallback, host_uid=uid)
        return False
    info["host_uid"] = uid
    if mapper is not None:
        os.write(mapper[1], b"x")
        os.close(mapper[1])
        if os.waitpid(mapper[0], 0)[1] == 0:
            info.update(sample_uid=SAMPLE_UID, host_uid=map_root_to)
            return True
        info["problems"].append(f"could not map uid {map_root_to} for samples: they keep root's file access")
    linux.write_id_maps(uid, gid)  # uid 0 inside is us outside, as ``unshare -r`` does
    return True


def isolate(
    hide: list[str], keep: list[str], scratch_bytes: int, map_root_to: int | None = None, view: bool = True
) -> dict:
    """Isolate the calling (single-threaded) process; returns what took effect and the scratch dir.

    With ``view`` the process pivots into a minimal root (``filesystem.build_view``); if the
    kernel refuses, or without ``view``, the whole host stays visible read-only, minus ``hide``.
    Each filesystem step that the kernel refuses is reported in ``problems`` and reflected in the
    flags (``readonly_root``, ``minimal_dev``, ``filesystem_view``, ``hidden_paths``) instead of
    stopping the worker.
    """
    info: dict = {
        "user_namespace": False,
        "network_isolated": False,
        "readonly_root": False,
        "minimal_dev": False,
        "filesystem_view": None,
        "hidden_paths": [],
        "problems": [],
    }
    if not _enter_namespaces(info, map_root_to):
        return info
    info["user_namespace"] = True
    info["network_isolated"] = [name for _, name in socket.if_nameindex()] == ["lo"]
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    keep_paths = {os.path.realpath(p) for p in keep if os.path.exists(p)}
    if view:
        try:
            info["filesystem_view"] = filesystem.build_view(sorted(keep_paths), scratch_bytes)
            info["minimal_dev"] = True
        except OSError as exc:
            info["problems"].append(f"no minimal filesystem view ({exc}): the host stays visible read-only")
    if info["filesystem_view"] is None:
        _hide_host(hide, keep_paths, scratch_bytes, info)
    failures = filesystem.remount_readonly({"/tmp"}, [*info["hidden_paths"], "/dev"])
    info["problems"].extend(f"could not make {f} read-only" for f in failures)
    info["readonly_root"] = not failures and filesystem.root_is_readonly()
    try:  # one trial of what every job does, so a refusal shows here rather than as job errors
        filesystem.fresh_scratch(scratch_bytes)
        linux.umount("/tmp", linux.MNT_DETACH)
        info["fresh_scratch"] = True
    except OSError as exc:
        info["problems"].append(f"no fresh /tmp per sample ({exc}): samples share the worker's /tmp")
        info["fresh_scratch"] = False
    info["scratch"] = tempfile.mkdtemp(prefix="work-", dir="/tmp")
    os.chmod(info["scratch"], 0o711)  # samples (maybe another uid) reach their own directory only
    return info


def _hide_host(hide: list[str], keep_paths: set[str], scratch_bytes: int, info: dict) -> None:
    """The fallback view: the host read-only, ``hide`` covered by empty tmpfs, a minimal /dev."""
    targets = dict.fromkeys(os.path.realpath(p) for p in ["/tmp", *hide] if os.path.isdir(p))
    filesystem.hide(targets, keep_paths, scratch_bytes, info)
    if "/tmp" in info["hidden_paths"]:
        os.mkdir(f"/tmp/{filesystem.SHM_DIR}")
        os.chmod(f"/tmp/{filesystem.SHM_DIR}", 0o1777)
    try:
        filesystem.minimal_dev()
        info["minimal_dev"] = True
    except OSError as exc:
        info["problems"].append(f"could not replace /dev ({exc}): host devices stay visible")


def as_namespace_init(max_tasks: int) -> dict:
    """Finish isolation in the process that is PID 1 of the worker's PID namespace.

    Mounts a /proc that shows only this namespace (no host process, no parent environment),
    caps the number of processes via the namespace's own pid_max (Linux >= 6.14; it binds root,
    which RLIMIT_NPROC does not), and empties the capability bounding set for all descendants.
    """
    info: dict = {"private_proc": False, "pid_max_namespaced": False, "problems": []}
    proc_flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.drop_bounding_set()
    try:
        linux.mount("proc", "/proc", "proc", proc_flags)
        info["private_proc"] = True
    except OSError as exc:
        info["problems"].append(f"no private /proc ({exc.strerror}): /proc hidden instead")
        linux.mount("tmpfs", "/proc", "tmpfs", proc_flags | linux.MS_RDONLY, "size=4k")
        return info
    try:
        with open("/proc/sys/kernel/pid_max", "w") as f:
            f.write(str(max(301, max_tasks)))  # the kernel refuses values below 301
        info["pid_max_namespaced"] = True
    except OSError as exc:
        info["problems"].append(
            f"pid_max is not per-namespace on this kernel ({exc.strerror}): a fork "
            "bomb run as root is bounded only by the timeout"
        )
    linux.mount(None, "/proc", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | proc_flags)
    return info
