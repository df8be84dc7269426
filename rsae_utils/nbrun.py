"""Run the numbered notebooks end to end with papermill: the engine behind ``make figures``.

    python -m rsae_utils.nbrun --profile default --nb 01,02 --set n_steps=500

Every selected notebook's parameters are resolved and checked before any kernel starts. A notebook is skipped
when its source, resolved parameters, the ``rsae_utils`` code and the stamps of the notebooks it reads are all
unchanged since its last successful run (``--force`` reruns anyway). Executed notebooks are kept in
``build/<profile>/executed/``; a failing one is kept there too, with the failing cell shown on the console.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rsae_utils import paths
from rsae_utils.errors import ParameterError
from rsae_utils.params import NOTEBOOKS, parse_override, resolve
from rsae_utils.paths import notebooks_dir, repo_root
from rsae_utils.repro import stable_hash
from rsae_utils.store import read_json, write_json


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
    if not spec or list(spec) == ["all"]:
        return list(nbs)
    chosen = []
    for item in spec:
        matches = [n for n in nbs if n == item or n.split("_", 1)[0] == item.zfill(2)]
        if not matches:
            raise ParameterError(f"parameter 'NB' has unknown notebook {item!r}; allowed: all, {', '.join(nbs)}")
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


def notebook_stamp(name: str, profile: str, overrides: Mapping[str, Any]) -> str:
    """Hash of everything a notebook's results depend on: source, parameters, code, upstream stamps."""
    cfg = resolve(name, profile, overrides)
    upstream = {}
    for up in NOTEBOOKS[name].after if name in NOTEBOOKS else ():
        sp = _stamp_path(up, profile)
        upstream[up] = read_json(sp)["stamp"] if sp.exists() else None
    return stable_hash(
        {
            "source": hashlib.sha256(available_notebooks()[name].read_bytes()).hexdigest(),
            "params": dict(cfg),
            "code": _code_fingerprint(),
            "upstream": upstream,
        }
    )


def is_up_to_date(name: str, profile: str, overrides: Mapping[str, Any] | None = None) -> bool:
    sp = _stamp_path(name, profile)
    if not sp.exists() or not (executed_dir(profile) / f"{name}.ipynb").exists():
        return False
    try:
        return read_json(sp)["stamp"] == notebook_stamp(name, profile, overrides or {})
    except (KeyError, json.JSONDecodeError):
        return False


def run_notebook(
    name: str,
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Execute one notebook with papermill and return the executed ``.ipynb``; skip it when up to date."""
    # Deferred: papermill and jupytext take seconds to import, and a bad parameter must fail before that.
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    overrides = dict(overrides or {})
    name = select_notebooks([name])[0]
    resolve(name, profile, overrides)  # fail on bad parameters before a kernel starts
    out = executed_dir(profile) / f"{name}.ipynb"
    if not force and is_up_to_date(name, profile, overrides):
        print(f"[nbrun] {name} ({profile}): up to date, not rerun")
        return out
    stamp = notebook_stamp(name, profile, overrides)
    _stamp_path(name, profile).unlink(missing_ok=True)
    nb = jupytext.read(available_notebooks()[name])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    print(f"[nbrun] {name} ({profile}): running -> {out}", flush=True)
    t0 = time.time()
    try:
        papermill.execute_notebook(
            nb,
            str(out),
            parameters={"PROFILE": profile, "OVERRIDES": overrides},
            kernel_name="python3",
            language="python",
            cwd=str(notebooks_dir()),
            progress_bar=progress,
        )
    except PapermillExecutionError as err:
        cell = f"cell {err.exec_count}:\n{err.source}\n" if getattr(err, "source", None) else ""
        raise NotebookFailed(name, out, f"{cell}{err.ename}: {err.evalue}") from None
    runtime = time.time() - t0
    write_json(
        _stamp_path(name, profile),
        {"notebook": name, "profile": profile, "overrides": overrides, "stamp": stamp, "runtime_s": round(runtime, 1)},
    )
    print(f"[nbrun] {name} ({profile}): done in {runtime:.1f} s", flush=True)
    return out


def run_many(names: Sequence[str], profile: str, sets: Mapping[str, Any], force: bool = False) -> dict[str, float]:
    """Resolve every notebook first (so bad input fails before any work), then run them in order."""
    unused = set(sets)
    per_nb: dict[str, dict[str, Any]] = {}
    for n in names:
        known = set(NOTEBOOKS[n].names()) if n in NOTEBOOKS else set()
        per_nb[n] = {k: v for k, v in sets.items() if k in known}
        unused -= set(per_nb[n])
    if unused:
        raise ParameterError(
            f"parameter(s) {', '.join(sorted(unused))} given with SET belong to none of the selected notebooks "
            f"({', '.join(names)})"
        )
    for n in names:
        resolve(n, profile, per_nb[n])
    # Pull in upstream notebooks that never ran under this profile, since their outputs are needed.
    order = list(available_notebooks())
    todo = list(names)
    for n in names:
        for up in NOTEBOOKS[n].after if n in NOTEBOOKS else ():
            if up not in todo and not _stamp_path(up, profile).exists():
                print(f"[nbrun] {n} reads {up}, which has not run under profile {profile!r}: running it first")
                todo.append(up)
                per_nb.setdefault(up, {})
    todo.sort(key=order.index)
    times = {}
    for n in todo:
        t0 = time.time()
        run_notebook(n, profile, per_nb[n], force=force)
        times[n] = time.time() - t0
    return times


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rsae_utils.nbrun", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", help="smoke, default or paper")
    ap.add_argument("--nb", default="all", help="'all' or a comma-separated list such as 01,02")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    ap.add_argument("--force", action="store_true", help="rerun even when up to date")
    args = ap.parse_args(argv)
    try:
        sets = dict(parse_override(s) for s in args.set)
        names = select_notebooks(args.nb)
        times = run_many(names, args.profile, sets, force=args.force)
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NotebookFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for n, t in times.items():
        print(f"[nbrun] {n}: {t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
