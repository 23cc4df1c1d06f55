"""Sandbox worker: isolates itself once, then runs one job per request, each in a fresh process.

Started by ``codelm.eval.worker.SandboxWorker`` with a scrubbed environment; it reads
length-prefixed JSON jobs on stdin and answers on stdout (see ``protocol``). Per job it makes
sure /tmp is an empty, size-capped tmpfs, writes the files into a work directory there (owned by the
samples' uid), compiles Python source, forks the sample (``child.spawn``), sends it a secret made
after the fork, drains its output up to a cap while enforcing the wall-clock timeout
(``outcome``; without a memory cgroup also the sample's total memory, ``accounting``), kills its
whole PID namespace when time is up or memory runs out, checks the proof of completion
against the secret, turns what happened into a verdict and empties /tmp again (a new tmpfs if the
sample left anything outside its work directory).
"""

from __future__ import annotations

import base64
import gc
import hmac
import importlib
import os
import shutil
import signal
import stat
import sys
import time
import traceback

from . import accounting, cgroup, child, filesystem, linux, outcome, protocol
from .isolate import as_namespace_init, isolate, unisolated

# Processes that share the sample's uid when it is the worker's own (outer worker, worker, sample).
_HARNESS_PROCESSES = 3
_MAX_SOURCE = 16 << 20  # characters of Python source the worker agrees to compile


def _report_cleanup_error(function, path, exc_info) -> None:
    print(f"codelm sandbox: could not remove {path}: {exc_info[1]}", file=sys.stderr, flush=True)


def _remove(workdir: str) -> None:
    """Delete a work directory; the common case (one file, written by us) without a tree walk."""
    try:
        with os.scandir(workdir) as entries:
            names = [e.name for e in entries if e.is_file(follow_symlinks=False)]
        for name in names:
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)
    except OSError:  # subdirectories, or files the sample made hard to delete: walk the tree
        shutil.rmtree(workdir, onerror=_report_cleanup_error)


def _result(status: str, detail: str) -> dict:
    return {
        "status": status,
        "returncode": None,
        "runtime": 0.0,
        "stdout": "",
        "stderr": "",
        "detail": detail,
        "truncated": False,
    }


def _write_files(workdir: str, files: list, owner: int | None, encoded: bool = True) -> None:
    for name, data in files:
        path = os.path.normpath(os.path.join(workdir, name))
        if not path.startswith(workdir + os.sep):
            raise ValueError(f"file name {name!r} escapes the work directory")
        parent = os.path.dirname(path)
        if parent != workdir:
            os.makedirs(parent, exist_ok=True)
            if owner is not None:
                for directory in _parents_below(parent, workdir):
                    os.chown(directory, owner, owner)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data) if encoded else data.encode("utf-8", "surrogatepass"))
        if owner is not None:
            os.chown(path, owner, owner)


def _parents_below(path: str, root: str) -> list[str]:
    parents = []
    while path != root:
        parents.append(path)
        path = os.path.dirname(path)
    return parents


class Worker:
    """Per-process state: what isolation took effect, the scratch directory, a job counter."""

    def __init__(
        self,
        info: dict,
        pidns_fd: int | None,
        scratch_bytes: int,
        memory: cgroup.Memory | None,
        meter: accounting.Meter | None = None,
    ) -> None:
        self.info = info
        self.scratch = info["scratch"]
        self.scratch_bytes = scratch_bytes
        self.fresh = bool(info.get("fresh_scratch"))
        self.mounted = False  # a per-sample tmpfs is on /tmp
        self.pidns_fd = pidns_fd if info.get("pid_namespace") else None
        self.sample_uid = info.get("sample_uid")
        self.memory = memory
        self.meter = meter  # caps a sample's total where there is no cgroup (``memory`` is None)
        self.jobs = 0

    def run_job(self, job: dict) -> dict:
        """Fresh /tmp and work directory, files, optional compile step, run step; always cleaned up."""
        self.jobs += 1
        if self.fresh and not self.mounted:  # everything earlier samples left in /tmp is gone
            filesystem.fresh_scratch(self.scratch_bytes)
            self.mounted = True
        if self.fresh:
            workdir = f"/tmp/job{self.jobs}"
        else:
            workdir = os.path.join(self.scratch, f"job{self.jobs}")
        try:
            os.mkdir(workdir, 0o700)
            if self.sample_uid is not None:
                os.chown(workdir, self.sample_uid, self.sample_uid)
            _write_files(workdir, job.get("files", []), self.sample_uid)
            if job.get("compile"):
                result = self.run_step(job["compile"], workdir)
                if result["status"] == "error":  # e.g. the compiler is not installed
                    result["detail"] = f"compile step: {result['detail']}"
                    return result
                if result["status"] != "passed":
                    errors = [line for line in result["stderr"].splitlines() if "error" in line.lower()]
                    reason = errors[0].strip()[:500] if errors else result["detail"] or "compilation failed"
                    detail = f"compile step {result['status']}: {reason}"
                    result.update(status="compile_error", detail=detail)
                    return result
            result = self.run_step(job["run"], workdir)
            if job.get("result_file") and result["status"] == "passed":
                path = os.path.join(workdir, job["result_file"])
                data = _read_regular(path, int(job["run"]["max_output_bytes"]))
                result["data"] = base64.b64encode(data).decode() if data is not None else None
            return result
        finally:
            if self.fresh:
                self._reset_scratch(workdir)
            elif os.path.isdir(workdir):
                _remove(workdir)

    def _reset_scratch(self, workdir: str) -> None:
        """Leave /tmp empty for the next sample. The common case, a sample that wrote only in its
        work directory, costs an unlink or two; anything else (files in /tmp or /dev/shm, space
        still in use) detaches the whole tmpfs, and the next job mounts a new one."""
        try:
            clean = sorted(os.listdir("/tmp")) == [filesystem.SHM_DIR, os.path.basename(workdir)]
            clean = clean and not os.listdir(f"/tmp/{filesystem.SHM_DIR}")
            if clean:
                _remove(workdir)
                usage = os.statvfs("/tmp")
                clean = usage.f_bfree == usage.f_blocks and not os.path.exists(workdir)
        except OSError:  # whatever it was, a new mount replaces it
            clean = False
        if not clean:
            linux.umount("/tmp", linux.MNT_DETACH)
            self.mounted = False

    def _prepare(self, step: dict, workdir: str) -> dict:
        step = dict(step)
        limits = dict(step["limits"])
        if limits.get("nproc") is not None:  # RLIMIT_NPROC counts every process of the sample's uid
            others = self.info.get("nproc_baseline", 0) + _HARNESS_PROCESSES
            if self.sample_uid is not None and self.info["user_namespace"]:  # a uid of its own
                others = 1
            limits["nproc"] = int(limits["nproc"]) + others
        step["limits"] = limits
        step["sample_uid"] = self.sample_uid
        step["env"] = {**step.get("env", {}), "HOME": workdir, "TMPDIR": workdir, "PWD": workdir}
        return step

    def run_step(self, step: dict, workdir: str) -> dict:
        """Run one step (compile or run) in a fresh child and return its verdict."""
        step = self._prepare(step, workdir)
        code = None
        if "source" in step:
            if len(step["source"]) > _MAX_SOURCE:
                return _result("error", f"source of {len(step['source'])} characters exceeds {_MAX_SOURCE}")
            _write_files(
                workdir, [[step.get("filename", "main.py"), step["source"]]], self.sample_uid, encoded=False
            )
            code, error = child.compile_source(step, workdir)
            if code is None:
                return _result("syntax_error", error)
        source = "source" in step
        pipes = {name: os.pipe() for name in ("out", "err", "ctl", *(["token"] if source else []))}
        ends = {name: w for name, (_, w) in pipes.items() if name != "token"}
        if source:  # the child reads the secret; the worker writes it
            ends["token"] = pipes["token"][0]
        watched = outcome.watch({pipes["out"][0]: "out", pipes["err"][0]: "err"})
        total, meter = step.get("memory_total_bytes"), None
        if self.memory is not None:
            limit = self.memory.prepare(total)
        else:  # a reading of the worker's own size, before the fork, sets the accounting's limit
            limit = self.meter.prepare(total) if self.meter is not None else None
            meter = self.meter if limit is not None else None
        start = time.monotonic()
        try:
            pid = child.spawn(
                step, workdir, ends, self.pidns_fd, drop_caps=bool(self.info.get("user_namespace")), code=code
            )
        except BaseException:
            for name, (r, w) in pipes.items():
                os.close(w if name == "token" else r)
            raise
        finally:
            for fd in ends.values():
                os.close(fd)
        token = self._send_token(pipes["token"][1]) if source else b""
        collected = outcome.collect(pid, watched, start, step, meter)
        # The markers are a few bytes, read once the sample is gone: polling them would wake the
        # worker while the sample runs, and every page the worker touches then is copied.
        collected["marker"] = outcome.read_available(pipes["ctl"][0])
        collected["proved"] = source and _proof_matches(os.path.join(workdir, child.PROOF_NAME), token)
        collected["oom"] = self.memory.oom_killed() if self.memory else False
        result = outcome.verdict(collected, step)
        result["memory_cap"] = limit
        result["memory_cap_by"] = self.info["memory_cap_by"] if limit is not None else None
        return result

    def _send_token(self, fd: int) -> bytes:
        """Make the sample's secret now, after the fork, so the sample's copy of this process's
        memory never held it; the child reads it before running anything of the sample's."""
        token = os.urandom(child.TOKEN_BYTES)
        try:
            os.write(fd, token)
        except BrokenPipeError:  # the child died before reading it: its verdict says why
            return b""
        finally:
            os.close(fd)
        return token


def _read_regular(path: str, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of a regular file the sample wrote; None if it is missing, a link or
    anything else (the worker must not read what a link would point it at)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # reported as "no result file" by the parent's check
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, 1 << 20)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks) if size <= limit else None
    finally:
        os.close(fd)


def _proof_matches(path: str, token: bytes) -> bool:
    """Did the sample's harness write ``token`` to ``path``? A link, a FIFO, a file the sample
    made unreadable or anything else that is not a regular file holding it is no proof."""
    proof = _read_regular(path, 64) if token else None
    return proof is not None and hmac.compare_digest(proof, token)


def _nproc_baseline(uid: int) -> int:
    """Processes this uid already runs (RLIMIT_NPROC counts them all when not in a user namespace)."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except FileNotFoundError:
                continue  # exited while we were counting
    return count


def main() -> None:
    """Read the config, isolate, report what took effect, then serve jobs until end of input."""
    ctl_in, ctl_out = os.dup(0), os.dup(1)  # dup() results are close-on-exec
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    config = protocol.read_frame(ctl_in)
    if config is None:
        return
    problems = []
    for name in config.get("preload", []):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            problems.append(f"preload {name}: {exc}")
    uid = os.getuid()
    map_to = config.get("map_root_to") if uid == 0 else None
    memory = cgroup.Memory.from_config(config["memory"]) if config.get("memory") else None
    if memory is not None:  # spare the worker at the cgroup's limit (needs CAP_SYS_RESOURCE)
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("-1000")
        except OSError as exc:
            problems.append(f"the OOM killer may pick the worker over a sample ({exc.strerror})")
    if config.get("isolate", True):
        hide, keep, view = config.get("hide", []), config.get("keep", []), config.get("view", True)
        info = isolate(hide, keep, int(config["scratch_bytes"]), map_to, view)
    else:
        info = unisolated("isolation disabled by the caller (isolate=False)")
    info["problems"] = problems + info["problems"]
    pidns_fd = None
    if info.get("worker_pid_namespace"):
        _become_namespace_init(ctl_in, ctl_out)
        init = as_namespace_init(int(config["max_tasks"]))  # mounts the namespace's own /proc
        pidns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        for found in (init, child.probe_pid_namespace(pidns_fd)):
            info["problems"] += found.pop("problems")
            info.update(found)
    if not info["user_namespace"]:
        if map_to is not None:  # no namespace, but as real root we can still make samples nobody
            info.update(sample_uid=map_to, host_uid=map_to)
        info["nproc_baseline"] = _nproc_baseline(info.get("sample_uid", uid))
    info.setdefault("host_uid", uid)
    info["rlimit_nproc_effective"] = info["host_uid"] != 0  # the kernel exempts root from it
    meter = None
    if memory is not None:
        memory.baseline = memory.usage()
    else:  # measured by the worker itself; needs the /proc of the final PID namespace, so only now
        meter, why = accounting.Meter.create(info)
        reason = config.get("memory_problem")
        if meter is None:
            info["problems"].append(
                f"{reason or 'no memory cgroup'}; {why}: memory is capped per process (RLIMIT_AS), "
                "not per sample"
            )
        elif reason:  # not when the caller chose accounting (Isolation(memory_cgroup=False))
            info["problems"].append(f"{reason}: a sample's total memory is capped by accounting instead")
    info["memory_cgroup"] = memory.kind if memory else None
    info["memory_cap_by"] = f"cgroup {memory.kind}" if memory else ("accounting" if meter else None)
    protocol.write_frame(ctl_out, {"ready": True, "info": info})
    worker = Worker(info, pidns_fd, int(config["scratch_bytes"]), memory, meter)
    # Everything the worker holds now (interpreter, preloaded modules) goes to the collector's
    # permanent generation: a sample's collections skip it, so they neither walk it nor write to
    # its pages (each write would copy a page the fork shares).
    gc.collect()
    gc.freeze()
    try:
        while (job := protocol.read_frame(ctl_in)) is not None:
            try:
                result = worker.run_job(job)
            except Exception:  # a harness bug must not take the worker down: report it per job
                result = _result("error", traceback.format_exc()[-4000:])
            protocol.write_frame(ctl_out, result)
    finally:
        if not info["user_namespace"]:
            shutil.rmtree(worker.scratch, onerror=_report_cleanup_error)


def _become_namespace_init(ctl_in: int, ctl_out: int) -> None:
    """Fork the process that serves jobs as PID 1 of the worker's PID namespace (its death ends
    every sample); the original process only waits for it. Returns in the child."""
    pid = os.fork()
    if pid == 0:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        linux.set_process_name("codelm-worker")
        return
    os.close(ctl_in)
    os.close(ctl_out)
    status = os.waitpid(pid, 0)[1]
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
