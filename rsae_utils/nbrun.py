"""Run the numbered notebooks end to end with papermill: the engine behind ``make figures``.

    python -m rsae_utils --profile default --nb "01 02" --set-string "seeds=[0, 1] variants=['trained']"

Every selected notebook's parameters are resolved and checked, and the output folders tested for writing, before
any kernel starts. A notebook is skipped when its source, resolved parameters, the ``rsae_utils`` code and the
stamps of the notebooks it reads are all unchanged since its last successful run *and* the figure files it wrote
and the artifacts it made or used (caches, SAEs, tables: recorded in its stamp) are still there, unchanged:
sizes always, and the sha256 of any file whose modification time moved (``--force`` reruns anyway, and the rerun
re-verifies every artifact's hashes before reusing it). After a run, figures the notebook made before but no longer
makes are removed. Executed notebooks are kept in ``build/<profile>/executed/``; a failing one is kept there too,
with the failing cell shown on the console. A successful default-profile run without overrides also writes the
readers' copy ``notebooks/executed/<name>.ipynb``. Ctrl-C (or SIGTERM) stops the kernel too and keeps what finished.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rsae_utils import outputs, paths, runguard
from rsae_utils.errors import ParameterError, SetupError
from rsae_utils.params import NOTEBOOKS, parse_overrides, resolve
from rsae_utils.params.core import check_profile, suggest
from rsae_utils.paths import notebooks_dir, repo_root
from rsae_utils.repro import stable_hash
from rsae_utils.store import (
    ARTIFACT_LOG_ENV,
    artifact_records,
    artifacts_changed,
    noted_artifacts,
    read_json,
    write_json,
)


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; the partial executed notebook is kept at ``.executed``."""

    def __init__(self, name: str, executed: Path, message: str):
        super().__init__(f"notebook {name} failed (executed copy kept at {executed}):\n{message}")
        self.executed = executed


def available_notebooks() -> dict[str, Path]:
    """``{"02_mmcs_goldilocks": path}`` for every ``notebooks/NN_*.py``, in order."""
    found = sorted(notebooks_dir().glob("[0-9][0-9]_*.py"))
    return {p.stem: p for p in found}


def select_notebooks(spec: str | Sequence[str] = "all") -> list[str]:
    """Expand ``all``, ``02``, ``02_mmcs_goldilocks`` or a comma-separated list into notebook names, in order."""
    nbs = available_notebooks()
    if isinstance(spec, str):
        spec = [s for s in spec.replace(" ", ",").split(",") if s]
    spec = [str(s).strip().strip("'\"") for s in spec]
    if not spec or list(spec) == ["all"]:
        return list(nbs)
    chosen = []
    for item in spec:
        matches = [n for n in nbs if n == item or n.split("_", 1)[0] == item.zfill(2)]
        if not matches:
            raise ParameterError(
                f"parameter 'NB' has unknown notebook {item!r}{suggest(item, list(nbs))}; "
                f"allowed: all, {', '.join(nbs)}"
            )
        chosen.extend(m for m in matches if m not in chosen)
    return [n for n in nbs if n in chosen]


def _code_fingerprint() -> str:
    h = hashlib.sha256()
    for p in sorted((repo_root() / "rsae_utils").rglob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def executed_dir(profile: str) -> Path:
    path = paths.executed_dir(profile)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stamp_path(name: str, profile: str) -> Path:
    return executed_dir(profile) / f"{name}.stamp.json"


def read_stamp(name: str, profile: str) -> dict | None:
    """The runner's stamp of ``name``'s last successful run; None when there is none or it is damaged (either way
    the notebook has to run again: :func:`stamp_state` says which)."""
    try:
        record = read_json(_stamp_path(name, profile))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("stamp"), str) else None


def stamp_state(name: str, profile: str) -> str:
    """'ok', 'missing' (never finished under ``profile``) or 'damaged' (unreadable: rerun that notebook)."""
    if not _stamp_path(name, profile).exists():
        return "missing"
    return "ok" if read_stamp(name, profile) is not None else "damaged"


def notebook_stamp(name: str, profile: str, overrides: Mapping[str, Any]) -> str:
    """Hash of everything a notebook's results depend on: source, parameters, code, upstream stamps (a missing or
    damaged upstream stamp counts as none)."""
    cfg = resolve(name, profile, overrides)
    upstream = {}
    for up in NOTEBOOKS[name].after if name in NOTEBOOKS else ():
        record = read_stamp(up, profile)
        upstream[up] = record["stamp"] if record else None
    return stable_hash(
        {
            "source": hashlib.sha256(available_notebooks()[name].read_bytes()).hexdigest(),
            "params": dict(cfg),
            "code": _code_fingerprint(),
            "upstream": upstream,
        }
    )


def stale_reason(name: str, profile: str, overrides: Mapping[str, Any] | None = None) -> str | None:
    """Why ``name`` must run again under ``profile`` (never ran, inputs changed, an output missing or edited);
    None when it is up to date."""
    sp = _stamp_path(name, profile)
    if not sp.exists() or not (executed_dir(profile) / f"{name}.ipynb").exists():
        return "no finished run"
    record = read_stamp(name, profile)
    if record is None:
        return f"unreadable stamp {sp}"
    try:
        if record["stamp"] != notebook_stamp(name, profile, overrides or {}):
            return "source, parameters, code or an upstream notebook changed"
        return outputs.outputs_changed(paths.figures_dir(profile), record.get("outputs", {})) or artifacts_changed(
            record.get("artifacts", {}), paths.build_dir()
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        return f"unreadable stamp {sp}"


def is_up_to_date(name: str, profile: str, overrides: Mapping[str, Any] | None = None) -> bool:
    return stale_reason(name, profile, overrides) is None


def output_folders(profile: str) -> list[tuple[Path, bool]]:
    """Where a run of ``profile`` writes, as (folder, with its subfolders): its build folder, its figures folder
    (the default profile's holds the other profiles' folders: its own top level only), and (default) the readers'
    copies."""
    folders = [
        (paths.work_dir(profile, create=False), True),
        (paths.figures_dir(profile, create=False), profile != "default"),
    ]
    if profile == "default":
        folders.append((outputs.executed_copies_dir(), True))
    return folders


def _update_executed_copy(
    name: str, profile: str, overrides: Mapping[str, Any], executed: Path, fresh: bool = False
) -> None:
    """Readers get the default run as it is, so only a default-profile run without overrides is copied: always after
    a run (``fresh``: the code or an input changed, so may the outputs), else when the copy is missing or stale."""
    if profile != "default" or overrides:
        return
    source = available_notebooks()[name]
    dest = outputs.executed_copies_dir() / f"{name}.ipynb"
    if fresh or not outputs.copy_is_current(dest, source):
        outputs.write_executed_copy(executed, source, dest)
        print(f"[nbrun] {name}: readers' copy -> {dest}", flush=True)


def run_notebook(
    name: str,
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Execute one notebook with papermill and return the executed ``.ipynb``; skip it when up to date.

    Long because it is one transaction: checks, the up-to-date skip, the stamp removed before the kernel starts and
    written only after it succeeded, the figures it wrote recorded; split, the order of those steps would be spread
    over helpers that each need the others' state."""
    # Deferred: papermill and jupytext take seconds to import, and a bad parameter must fail before that.
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    overrides = dict(overrides or {})
    name = select_notebooks([name])[0]
    runguard.check_writable(output_folders(profile))
    resolve(name, profile, overrides)  # fail on bad parameters before a kernel starts
    out = executed_dir(profile) / f"{name}.ipynb"
    reason = None if force else stale_reason(name, profile, overrides)
    if not force and reason is None:
        n_art = len((read_stamp(name, profile) or {}).get("artifacts", {}))
        print(
            f"[nbrun] {name} ({profile}): up to date, not rerun (figures and {n_art} artifacts checked: sizes, "
            "and hashes of files changed since; FORCE=1 reruns and re-verifies every hash)"
        )
        _update_executed_copy(name, profile, overrides, out)
        return out
    stamp = notebook_stamp(name, profile, overrides)
    _stamp_path(name, profile).unlink(missing_ok=True)
    nb = jupytext.read(available_notebooks()[name])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    why = "forced" if force else reason
    print(f"[nbrun] {name} ({profile}): running ({why}) -> {out}", flush=True)
    session = runguard.current_session()
    if session is not None:
        session.current_output = out
    t0, t0_ns = time.time(), time.time_ns()
    # The kernel inherits the environment: the store notes there every artifact the notebook makes or reuses.
    log = executed_dir(profile) / f".{name}.artifacts.tmp"
    log.unlink(missing_ok=True)
    saved_log = os.environ.get(ARTIFACT_LOG_ENV)
    os.environ[ARTIFACT_LOG_ENV] = str(log)
    try:
        papermill.execute_notebook(
            nb,
            str(out),
            parameters={"PROFILE": profile, "OVERRIDES": overrides},
            kernel_name="python3",
            language="python",
            cwd=str(notebooks_dir()),
            progress_bar=progress,
            kernel_manager_class=runguard.kernel_manager_class(),
        )
    except PapermillExecutionError as err:
        cell = f"cell {err.exec_count}:\n{err.source}\n" if getattr(err, "source", None) else ""
        log.unlink(missing_ok=True)
        raise NotebookFailed(name, out, f"{cell}{err.ename}: {err.evalue}") from None
    finally:
        if saved_log is None:
            os.environ.pop(ARTIFACT_LOG_ENV, None)
        else:
            os.environ[ARTIFACT_LOG_ENV] = saved_log
        if session is not None:
            session.current_output = None
    runtime = time.time() - t0
    artifacts = artifact_records(noted_artifacts(log), paths.build_dir())
    log.unlink(missing_ok=True)
    figs = paths.figures_dir(profile)
    for gone in outputs.remove_stale_figures(figs, name, profile, t0_ns):
        print(f"[nbrun] {name}: removed {figs / gone} (an earlier run's figure this run no longer makes)")
    write_json(
        _stamp_path(name, profile),
        {
            "notebook": name,
            "profile": profile,
            "overrides": overrides,
            "stamp": stamp,
            "runtime_s": round(runtime, 1),
            "outputs": outputs.written_outputs(figs, t0_ns),
            "artifacts": artifacts,
        },
    )
    _update_executed_copy(name, profile, overrides, out, fresh=True)
    print(f"[nbrun] {name} ({profile}): done in {runtime:.1f} s", flush=True)
    return out


def run_many(names: Sequence[str], profile: str, sets: Mapping[str, Any], force: bool = False) -> dict[str, float]:
    """Resolve every notebook first (so bad input fails before any work), then run them in order."""
    runguard.check_writable(output_folders(profile))
    unused = set(sets)
    per_nb: dict[str, dict[str, Any]] = {}
    for n in names:
        known = set(NOTEBOOKS[n].names()) if n in NOTEBOOKS else set()
        per_nb[n] = {k: v for k, v in sets.items() if k in known}
        unused -= set(per_nb[n])
    if unused:
        raise ParameterError("; ".join(_unused_message(k, names) for k in sorted(unused)))
    for n in names:
        resolve(n, profile, per_nb[n])
    # Pull in upstream notebooks that never ran under this profile (or whose stamp is damaged: nothing says their
    # outputs are whole), since their outputs are needed.
    order = list(available_notebooks())
    todo = list(names)
    for n in names:
        pull = n in NOTEBOOKS and NOTEBOOKS[n].pull_upstream
        for up in NOTEBOOKS[n].after if n in NOTEBOOKS else ():
            state = stamp_state(up, profile)
            if up in todo or state == "ok":
                continue
            why = (
                f"whose stamp {_stamp_path(up, profile)} is damaged"
                if state == "damaged"
                else f"which has not run under profile {profile!r}"
            )
            if pull:
                print(f"[nbrun] {n} reads {up}, {why}: running it first")
                todo.append(up)
                per_nb.setdefault(up, {})
            elif state == "damaged":
                print(f"[nbrun] {n} reads {up}, {why}: rerun it (make figures NB={up[:2]} PROFILE={profile})")
    todo.sort(key=order.index)
    times = {}
    for n in todo:
        t0 = time.time()
        run_notebook(n, profile, per_nb[n], force=force)
        times[n] = time.time() - t0
    return times


def _unused_message(key: str, names: Sequence[str]) -> str:
    """A SET name none of the selected notebooks has: the notebook it belongs to, or the closest name."""
    owners = [n for n, spec in NOTEBOOKS.items() if key in spec.names()]
    if owners:
        which = f"{owners[0]}, which is not" if len(owners) == 1 else f"{', '.join(owners)}, none of which is"
        return f"parameter {key!r} belongs to {which} selected (NB={','.join(names)})"
    known = sorted({p for n in names if n in NOTEBOOKS for p in NOTEBOOKS[n].names()})
    return f"unknown parameter {key!r}{suggest(key, known)}: none of the selected notebooks ({', '.join(names)}) has it"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m rsae_utils", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", help="smoke, default, paper or gpu")
    ap.add_argument("--nb", default="all", help="'all' or a list such as '01,02' or '01 02'")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override one parameter")
    ap.add_argument(
        "--set-string",
        default="",
        metavar="'NAME=VALUE ...'",
        help="several overrides in one string (make's SET): split at spaces outside quotes and brackets",
    )
    ap.add_argument("--force", action="store_true", help="rerun even when up to date")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sets = parse_overrides(args.set)
        for key, value in parse_overrides(args.set_string).items():
            if key in sets:
                raise ParameterError(f"parameter {key!r} is given twice ({sets[key]!r} and {value!r})")
            sets[key] = value
        names = select_notebooks(args.nb)
        check_profile(args.profile)
        runguard.check_writable(output_folders(args.profile))  # before the session writes its lock there
        with runguard.RunSession(args.profile):
            times = run_many(names, args.profile, sets, force=args.force)
    except (ParameterError, SetupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NotebookFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the session's own handler is in place
        print(runguard.INTERRUPTED, file=sys.stderr)
        return 130
    for n, t in times.items():
        print(f"[nbrun] {n}: {t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
