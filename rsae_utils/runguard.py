"""What keeps a ``make figures`` run safe to stop: the profile lock, the notebook kernel's process group, stale
temporary files, and writable output folders.

* One runner per profile: ``build/<profile>/.nbrun.lock.json`` records the runner's pid (with its start time, so
  a reused pid is not mistaken for it) and the pids of the kernels it started.
* A kernel runs in a session of its own (jupyter_client starts it with ``start_new_session``), so a signal to the
  runner does not reach it; :class:`RunSession` kills the kernel's whole process group on SIGINT/SIGTERM, removes
  the temporary files the killed kernel left, prints one line and exits with 130.
* A runner killed with SIGKILL cannot clean up: the next run finds its lock with a dead pid, kills the orphaned
  kernel if it is still alive, and removes the ``.building`` folders and ``.tmp`` files made while it ran.
"""

from __future__ import annotations

import contextlib
import os
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

LOCK_NAME = ".nbrun.lock.json"
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
def check_writable(folders: Iterable[Path]) -> None:
    """Refuse, before any work, an output folder that cannot be created or written (naming it)."""
    for folder in folders:
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise SetupError(
                f"output folder {folder} is not writable ({err.strerror or err}); make it writable or point "
                f"RSAE_BUILD_DIR / RSAE_FIGURES_DIR elsewhere"
            ) from None


def _temp_entries(folder: Path, recursive: bool) -> list[Path]:
    """``.building`` folders (the store's unfinished artifacts) and ``.<name>.*.tmp`` files (unfinished writes)."""
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
            if d.startswith(".") and d.endswith(".building"):
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


def temp_folders(profile: str) -> list[tuple[Path, bool]]:
    """(folder, recursive) where a run of ``profile`` leaves temporary entries; the default profile's figures
    folder holds the other profiles' folders, so only its top level is searched."""
    return [(paths.work_dir(profile), True), (paths.figures_dir(profile), False)]


def clean_stale(profile: str, since: float | None = None) -> list[Path]:
    """Remove temporary entries of ``profile`` that no live process is writing; the removed paths.

    ``since``: the start time of a runner whose kernels are now dead: what changed after it was theirs. Entries
    older than :data:`UNOWNED_GRACE_S` go too (an interactive kernel killed, a runner from before the lock).
    """
    removed = []
    now = time.time()
    for folder, recursive in temp_folders(profile):
        for entry in _temp_entries(folder, recursive):
            try:
                newest = _newest_mtime(entry)
            except OSError:
                continue
            owned_by_dead = since is not None and newest >= since
            if owned_by_dead or now - newest > UNOWNED_GRACE_S:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
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
        self.started = time.time()
        self.current_output: Path | None = None  # the executed notebook being written
        self._old_handlers: dict[int, Any] = {}

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

    def __enter__(self) -> RunSession:
        global _SESSION
        prev = None
        if self.lock.exists():
            try:
                prev = read_json(self.lock)
            except (OSError, ValueError):
                prev = None
        if prev and prev.get("pid") != os.getpid() and is_alive(prev["pid"], prev.get("pid_start")):
            raise SetupError(
                f"another run (pid {prev['pid']}) is using {self.lock.parent}; wait for it to finish or stop it"
            )
        if prev:  # a runner killed without cleaning up: its kernel may still be running, and writing
            for pid, start in prev.get("kernels", []):
                if kill_group(pid, start):
                    print(f"[nbrun] stopped kernel {pid} orphaned by an earlier run", flush=True)
        for path in clean_stale(self.profile, since=prev.get("started") if prev else None):
            print(f"[nbrun] removed {path} (left by an interrupted run)", flush=True)
        self.write_lock()
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
        self.lock.unlink(missing_ok=True)

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
        self.lock.unlink(missing_ok=True)
        sys.stdout.flush()
        print(f"\n{INTERRUPTED}", file=sys.stderr, flush=True)  # a progress bar may hold the current line
        os._exit(130)


def current_session() -> RunSession | None:
    return _SESSION
