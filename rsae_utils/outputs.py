"""What a notebook run leaves for readers: the figure files it wrote (recorded in the runner's stamp, so a deleted
or edited figure makes the notebook rerun), the removal of figures it no longer makes, and the executed ``.ipynb``
copies of the default run under ``notebooks/executed/`` (kept in step with the ``.py`` source by a hash).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rsae_utils.paths import executed_copies_dir, executed_copy, notebook_source, repo_root
from rsae_utils.store import atomic_write_text, file_sha256, read_json

MANIFEST_SUFFIX = ".manifest.json"
# The executed copy's metadata field: which source it came from, and that source's sha256.
COPY_KEY = "rsae"


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []


def written_outputs(folder: Path, since_ns: int) -> dict[str, str]:
    """``{file name: sha256}`` of the files at the top of ``folder`` written at or after ``since_ns``.

    A figure's hashes come from its manifest (``save_figure`` records them), with the shared files it needs
    (``assets``: plotly.min.js, even when an earlier run wrote it); other files (the latent browser) are hashed
    here.
    """
    fresh = [p for p in _visible_files(folder) if p.stat().st_mtime_ns >= since_ns]
    out: dict[str, str] = {}
    for p in fresh:
        if p.name.endswith(MANIFEST_SUFFIX):
            try:
                man = read_json(p)
                groups = [man.get("files", {}), man.get("assets", {})]
            except (OSError, ValueError, AttributeError):
                groups = []
            for files in groups:
                for rec in files.values() if isinstance(files, dict) else ():
                    if isinstance(rec, dict) and "name" in rec and "sha256" in rec:
                        out[rec["name"]] = rec["sha256"]
    for p in fresh:
        out.setdefault(p.name, file_sha256(p))
    return dict(sorted(out.items()))


def outputs_changed(folder: Path, outputs: dict[str, str]) -> str | None:
    """Why the recorded ``outputs`` no longer stand in ``folder`` (a file missing or changed), or None."""
    for name, sha in outputs.items():
        path = folder / name
        if not path.exists():
            return f"output {path} is missing"
        if file_sha256(path) != sha:
            return f"output {path} was changed"
    return None


def stale_figures(folder: Path, notebook: str, profile: str, since_ns: int) -> list[Path]:
    """Manifests in ``folder`` that name ``notebook`` and ``profile`` but were not rewritten since ``since_ns``:
    figures an earlier run made and this one no longer does (a backend dropped, say)."""
    stale = []
    for p in _visible_files(folder):
        if not p.name.endswith(MANIFEST_SUFFIX) or p.stat().st_mtime_ns >= since_ns:
            continue
        try:
            man = read_json(p)
        except (OSError, ValueError):
            continue
        if isinstance(man, dict) and man.get("notebook") == notebook and man.get("profile") == profile:
            stale.append(p)
    return stale


def remove_stale_figures(folder: Path, notebook: str, profile: str, since_ns: int) -> list[str]:
    """Delete every stale figure of ``notebook`` (its files and manifest); the names removed."""
    removed = []
    for man_path in stale_figures(folder, notebook, profile, since_ns):
        files = read_json(man_path).get("files", {})
        for rec in files.values() if isinstance(files, dict) else ():
            name = rec.get("name") if isinstance(rec, dict) else None
            if name and "/" not in name and (folder / name).is_file():
                (folder / name).unlink()
                removed.append(name)
        man_path.unlink()
        removed.append(man_path.name)
    return removed


# --------------------------------------------------------------------------------------------------------------
# Executed copies for readers (GitHub renders them, Colab opens them)
# --------------------------------------------------------------------------------------------------------------
def source_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_executed_copy(executed: Path, source: Path, dest: Path | None = None) -> Path:
    """Copy the executed notebook ``executed`` to ``notebooks/executed/<name>.ipynb`` with the sha256 of its
    ``.py`` ``source`` in ``metadata.rsae``; machine-specific paths papermill records are left out."""
    nb = read_json(executed)
    meta = nb.setdefault("metadata", {})
    pm = meta.get("papermill")
    if isinstance(pm, dict):
        for key in ("input_path", "output_path"):
            pm.pop(key, None)
    meta[COPY_KEY] = {
        "source": f"notebooks/{source.name}",
        "source_sha256": source_sha256(source),
        "profile": "default",
    }
    dest = dest or executed_copy(source.stem)
    return atomic_write_text(dest, portable_copy(nb, repo_root()))


def portable_copy(nb: dict, root: Path) -> str:
    """The notebook as committed JSON without this machine's paths: stderr streams (warnings naming the local
    site-packages, progress bars) are dropped, and paths under the checkout ``root`` become repo-relative."""
    for cell in nb.get("cells", []):
        if "outputs" in cell:
            cell["outputs"] = [
                o for o in cell["outputs"] if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    return text.replace(str(Path(root).resolve()) + "/", "")


def copy_is_current(dest: Path, source: Path) -> bool:
    try:
        return read_json(dest)["metadata"][COPY_KEY]["source_sha256"] == source_sha256(source)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def executed_copy_drift(nb_dir: Path | None = None) -> list[str]:
    """Problems with the executed copies under ``nb_dir/executed``: a copy whose source changed since it was
    made, names no source, or has no ``.py`` beside it. Empty when every copy matches its source."""
    problems = []
    for copy in sorted(executed_copies_dir(nb_dir).glob("*.ipynb")):
        source = notebook_source(copy.stem, nb_dir)
        if not source.exists():
            problems.append(f"{copy}: no notebook {source.name} to have come from")
            continue
        try:
            recorded = read_json(copy)["metadata"][COPY_KEY]["source_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            problems.append(f"{copy}: no metadata.{COPY_KEY}.source_sha256 (not written by the runner)")
            continue
        if recorded != source_sha256(source):
            problems.append(
                f"{copy}: made from another version of {source.name}; rerun `make figures NB={copy.stem[:2]}`"
            )
    return problems
