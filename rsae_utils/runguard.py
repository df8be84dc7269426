"""What keeps a ``make figures`` run safe to stop: the profile lock, the notebook kernel's process group, stale
temporary files, and writable output folders.

* One runner per profile: the runner holds an exclusive ``fcntl.flock`` on ``build/<profile>/.nbrun.lock`` for
  the whole run (the kernel releases it when the process ends, however it ends, so two runs can never both hold
  it); ``.nbrun.lock.json`` beside it records the holder's pid (with its start time) and the pids of the kernels
  it started, and is removed at the end by the run that wrote it, never by another.
* A kernel runs in a session of its own (jupyter_client starts it with ``start_new_session``), so a signal to the
  runner does not reach it; :class:`RunSession` kills the kernel's whole process group on SIGINT/SIGTERM, removes
  the temporary files the killed kernel left, prints one line and exits with 130.
* A runner killed with SIGKILL cannot clean up: the next run finds its lock with a dead pid, kills the orphaned
  kernel if it is still alive, and removes the ``.building`` folders and ``.tmp`` files made while it ran, and the
  ``.<name>.old-<pid>`` folders (an artifact being replaced) of processes that are gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rsae_utils import paths
from rsae_utils.errors import INTERRUPTED, SetupError
from rsae_utils.store import read_json, write_json

LOCK_NAME = ".nbrun.lock.json"  # the holder's record (pid, kernels); the lock itself is FLOCK_NAME
FLOCK_NAME = ".nbrun.lock"  # kept between runs: deleting a flock'ed file would let a second run lock a new one
# A temporary entry nobody can be shown to own is left alone this long: an interactive kernel may be writing it.
UNOWNED_GRACE_S = 600.0

_KERNELS: list[tuple[int, int | None]] = []  # (pid, start time) of every kernel started in this process
_SESSION: RunSession | None = None


# --------------------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------------------
def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot; 0 without /proc), None if it is gone."""
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])  # a zombie has finished
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0


def is_alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` runs and, when ``start`` is given, is the same process that was recorded."""
    now = process_start(pid)
    return now is not None and (start is None or not now or not start or now == start)


def kill_group(pid: int, start: int | None = None, wait_s: float = 5.0) -> bool:
    """SIGKILL the process group led by ``pid`` (a kernel leads its own session) and wait until it is gone."""
    if not is_alive(pid, start):
        return False
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return False
    deadline = time.time() + wait_s
    while is_alive(pid, start) and time.time() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap our own child, so it does not linger as a zombie
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    return True


def kill_kernels() -> list[int]:
    """Kill every kernel this process started that still runs; their pids."""
    return [pid for pid, start in list(_KERNELS) if kill_group(pid, start)]


def register_kernel(pid: int) -> None:
    _KERNELS.append((pid, process_start(pid)))
    if _SESSION is not None:
        _SESSION.write_lock()


def kernel_manager_class() -> type:
    """An ``AsyncKernelManager`` that records each kernel it starts (papermill's ``kernel_manager_class``)."""
    # Deferred: jupyter_client costs ~0.5 s to import, and a bad parameter must fail before that.
    from jupyter_client import AsyncKernelManager

    class TrackedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            pid = getattr(self.provisioner, "pid", None)
            if pid:
                register_kernel(int(pid))

    return TrackedKernelManager


# --------------------------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------------------------
def _not_writable(folder: Path, why: str) -> SetupError:
    return SetupError(
        f"output folder {folder} is not writable ({why}); make it writable (chmod -R u+w {folder}) or point "
        f"RSAE_BUILD_DIR / RSAE_FIGURES_DIR elsewhere"
    )


def check_writable(folders: Iterable[Path | tuple[Path, bool]]) -> None:
    """Refuse, before any work, an output folder that cannot be created or written (naming it).

    Each item is a folder or ``(folder, deep)``: with ``deep`` (the default) every existing subfolder is checked
    too, since a run writes into them (``build/<profile>/executed``, ``saes/...``) and a read-only one would
    otherwise fail mid-run with a raw PermissionError.
    """
    for item in folders:
        folder, deep = (Path(item[0]), bool(item[1])) if isinstance(item, tuple) else (Path(item), True)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise _not_writable(folder, str(err.strerror or err)) from None
        if not deep:
            continue
        # os.access: one cheap call per folder (root passes it, as root passes the probe; nothing to refuse then).
        for root, dirs, _ in os.walk(folder):
            for d in dirs:
                sub = Path(root) / d
                if not os.access(sub, os.W_OK | os.X_OK):
                    raise _not_writable(sub, "permission denied")


_OLD_RE = re.compile(r"^\..+\.old-(\d+)$")  # store.cached_artifact's replaced artifact, named by its process


def _temp_entries(folder: Path, recursive: bool) -> list[Path]:
    """``.building`` folders (the store's unfinished artifacts), ``.<name>.old-<pid>`` folders (an artifact being
    replaced) and ``.<name>.*.tmp`` files (unfinished writes)."""
    if not folder.is_dir():
        return []
    found = []
    if recursive:
        walk: Iterable[tuple[str, list[str], list[str]]] = os.walk(folder)
    else:
        entries = list(folder.iterdir())
        walk = [(str(folder), [e.name for e in entries if e.is_dir()], [e.name for e in entries if not e.is_dir()])]
    for root, dirs, files in walk:
        for d in list(dirs):
            if d.startswith(".") and (d.endswith(".building") or _OLD_RE.match(d)):
                found.append(Path(root) / d)
                dirs.remove(d)  # do not descend into what will be removed
        found += [Path(root) / f for f in files if f.startswith(".") and f.endswith(".tmp")]
    return found


def _newest_mtime(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    times = [path.stat().st_mtime]
    for root, _, files in os.walk(path):
        times += [(Path(root) / f).stat().st_mtime for f in files if (Path(root) / f).exists()]
    return max(times)


def temp_folders(profile: str) -> list[tuple[Path, bool, bool]]:
    """(folder, recursive, owned) where a run of ``profile`` leaves temporary entries. The default profile's
    figures folder holds the other profiles' folders, so only its top level is searched. The LLM response cache
    is shared by every profile (not ``owned``): a run of another profile may be writing there now, so only old
    entries go."""
    return [
        (paths.work_dir(profile), True, True),
        (paths.figures_dir(profile), False, True),
        (paths.llm_response_cache_dir(), True, False),
    ]


def _remove(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def clean_stale(profile: str, since: float | None = None) -> list[Path]:
    """Remove temporary entries of ``profile`` that no live process is writing; the removed paths.

    ``since``: the start time of a runner whose kernels are now dead: what changed after it was theirs. Entries
    older than :data:`UNOWNED_GRACE_S` go too (an interactive kernel killed, a runner from before the lock). An
    ``.old-<pid>`` folder goes once process ``pid`` is gone (it is removed right after the rename that made it).
    """
    removed = []
    now = time.time()
    for folder, recursive, owned in temp_folders(profile):
        for entry in _temp_entries(folder, recursive):
            old = _OLD_RE.match(entry.name)
            if old:
                if not is_alive(int(old.group(1))):
                    _remove(entry)
                    removed.append(entry)
                continue
            try:
                newest = _newest_mtime(entry)
            except OSError:
                continue
            owned_by_dead = owned and since is not None and newest >= since
            if owned_by_dead or now - newest > UNOWNED_GRACE_S:
                _remove(entry)
                removed.append(entry)
    return removed


# --------------------------------------------------------------------------------------------------------------
# The run session
# --------------------------------------------------------------------------------------------------------------
class RunSession:
    """The runner's hold on a profile: lock, stale clean-up at start, and SIGINT/SIGTERM handling.

    ``with RunSession(profile): ...``; on a signal the kernels are killed, their temporary files removed, the
    lock released, :data:`INTERRUPTED` printed and the process exits with 130 (no traceback).
    """

    def __init__(self, profile: str, handle_signals: bool = True):
        self.profile = profile
        self.handle_signals = handle_signals
        self.lock = paths.work_dir(profile) / LOCK_NAME
        self.flock_path = self.lock.with_name(FLOCK_NAME)
        self.started = time.time()
        self.current_output: Path | None = None  # the executed notebook being written
        self._old_handlers: dict[int, Any] = {}
        self._fd: int | None = None

    def write_lock(self) -> None:
        write_json(
            self.lock,
            {
                "pid": os.getpid(),
                "pid_start": process_start(os.getpid()),
                "started": self.started,
                "kernels": [[pid, start] for pid, start in _KERNELS if is_alive(pid, start)],
            },
        )

    def _read_record(self) -> dict | None:
        try:
            rec = read_json(self.lock)
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def _take_lock(self) -> None:
        """The exclusive flock, or SetupError naming the run that holds it. One atomic step: two runs started at
        the same instant cannot both get it (reading a pid and then writing ours could)."""
        fd = os.open(self.flock_path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by the kernels (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = self._read_record() or {}
            who = f"pid {holder['pid']}" if "pid" in holder else "another process"
            raise SetupError(
                f"another run ({who}) is using {self.lock.parent}; wait for it to finish or stop it"
            ) from None
        self._fd = fd

    def _release_lock(self) -> None:
        """Remove the record only when it is ours, then drop the flock."""
        rec = self._read_record()
        if rec is None or rec.get("pid") == os.getpid():
            self.lock.unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunSession:
        global _SESSION
        self._take_lock()
        try:
            # The lock is ours, so whoever wrote a record left without cleaning up (SIGKILL, a crash): its kernel
            # may still be running, and writing.
            prev = self._read_record() if self.lock.exists() else None
            kernels = prev.get("kernels") if prev else None
            for pid, start in kernels if isinstance(kernels, list) else []:
                if kill_group(pid, start):
                    print(f"[nbrun] stopped kernel {pid} orphaned by an earlier run", flush=True)
            since = prev.get("started") if prev else None
            for path in clean_stale(self.profile, since=since if isinstance(since, (int, float)) else None):
                print(f"[nbrun] removed {path} (left by an interrupted run)", flush=True)
            self.write_lock()
        except BaseException:
            self._release_lock()
            raise
        _SESSION = self
        if self.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        global _SESSION
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        _SESSION = None
        self._release_lock()

    def _on_signal(self, signum: int, frame: Any) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        kill_kernels()
        clean_stale(self.profile, since=self.started)  # what the killed kernel was writing
        out = self.current_output
        if out is not None and out.exists():
            try:  # papermill writes it in place: drop a copy the signal cut short
                read_json(out)
            except (OSError, ValueError):
                out.unlink(missing_ok=True)
        self._release_lock()
        sys.stdout.flush()
        print(f"\n{INTERRUPTED}", file=sys.stderr, flush=True)  # a progress bar may hold the current line
        os._exit(130)


def current_session() -> RunSession | None:
    return _SESSION
