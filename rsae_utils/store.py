"""The one artifact store: atomic writes, manifests, and reuse of finished work.

Every artifact is a folder with a ``manifest.json`` written *last*: it records the parameters and code hash that
made the artifact (its *key*), provenance (versions, git revision), the runtime, and the sha256 and size of each
file. A folder is reused only when its key matches and every file still has the recorded size and hash; a stale
or corrupt folder is rebuilt with a warning, never silently used. Folders are built in a temporary sibling and
renamed into place, so an interrupted run leaves either the old artifact or nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import torch

from rsae_utils.errors import ArtifactError
from rsae_utils.repro import code_hash, jsonable, provenance, stable_hash

MANIFEST = "manifest.json"


# --------------------------------------------------------------------------------------------------------------
# Atomic file writes
# --------------------------------------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would (0666 minus the umask).
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    """What ``json`` cannot write by itself: NumPy/torch numbers and arrays, objects with ``to_dict``."""
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, torch tensors
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)


def write_json(path: str | os.PathLike, obj: Any, compact: bool = False) -> Path:
    """``obj`` as JSON, keys sorted, written atomically. ``compact``: no indentation and no deep copy first, for
    large tables of numbers (sampled-latent records, scoring units): an indent makes ``json`` fall back to its
    pure-Python encoder, ~10x slower than the C one on such files. Keys must then be strings."""
    if compact:
        text = json.dumps(obj, separators=(",", ":"), sort_keys=True, default=_json_default)
        return atomic_write_text(path, text + "\n")
    return atomic_write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


# sha256 of files already hashed in this process, by (path, inode, size, mtime_ns, ctime_ns): a stage that opens
# the same shard or SAE many times hashes it once. Only files last changed over _RACY_NS ago are remembered, so a
# rewrite inside one timestamp tick of the hashing (coarse filesystem clocks) can never be mistaken for the old file.
_HASHES: dict[tuple, str] = {}
_RACY_NS = 2_000_000_000


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    st = os.stat(path)
    memo = (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if memo in _HASHES:
        return _HASHES[memo]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
        _HASHES[memo] = digest
    return digest


def forget_hashes() -> None:
    """Drop the remembered file hashes (the next check reads every file again)."""
    _HASHES.clear()


def file_record(path: Path) -> dict[str, Any]:
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


# --------------------------------------------------------------------------------------------------------------
# Folder artifacts with manifests
# --------------------------------------------------------------------------------------------------------------
def artifact_key(params: Any, code: Iterable[ModuleType | str] = ()) -> str:
    code = list(code)
    return stable_hash({"params": params, "code": code_hash(code) if code else None})


def verify_artifact(path: str | os.PathLike, key: str | None = None) -> tuple[bool, str]:
    """(ok, reason): the folder's manifest exists, has ``key`` (when given), and every file matches its record."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        return False, "no manifest (never finished)"
    try:
        manifest = read_json(manifest_path)
    except (OSError, ValueError) as err:
        return False, f"unreadable manifest {manifest_path} ({err})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        return False, f"manifest {manifest_path} is not an artifact manifest"
    if key is not None and manifest.get("key") != key:
        return False, f"made with other parameters or code (key {manifest.get('key')} != {key})"
    for name, rec in manifest.get("files", {}).items():
        f = path / name
        if not isinstance(rec, dict) or "bytes" not in rec or "sha256" not in rec:
            return False, f"manifest {manifest_path} has no size and sha256 for {name}"
        if not f.exists():
            return False, f"file {f} missing"
        if f.stat().st_size != rec["bytes"]:
            return False, f"file {f} has {f.stat().st_size} bytes, manifest says {rec['bytes']}"
        if file_sha256(f) != rec["sha256"]:
            return False, f"file {f} does not match the sha256 its manifest records (overwritten or corrupt)"
    return True, "ok"


def content_hash(path: str | os.PathLike, rerun: str = "") -> str:
    """A short hash of a verified artifact's contents (the sha256 of every file): what is derived from the artifact
    is keyed by it, so a repaired or rebuilt input invalidates everything made from it. ArtifactError naming the
    artifact, what is wrong with it and ``rerun`` (what rebuilds it) when it is missing, stale or corrupt."""
    ok, reason = verify_artifact(path)
    if not ok:
        raise ArtifactError(f"{path}: {reason}" + (f"; {rerun}" if rerun else ""))
    files = read_json(Path(path) / MANIFEST)["files"]
    return stable_hash({name: rec["sha256"] for name, rec in sorted(files.items())})


def write_manifest(path: Path, params: Any, key: str, runtime_s: float | None, extra: Mapping | None = None) -> dict:
    files = {
        str(f.relative_to(path)): file_record(f)
        for f in sorted(path.rglob("*"))
        if f.is_file() and f.name != MANIFEST and not f.name.startswith(".")
    }
    manifest = {
        "key": key,
        "params": params,
        "provenance": provenance(),
        "runtime_s": None if runtime_s is None else round(runtime_s, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
        **(dict(extra) if extra else {}),
    }
    write_json(path / MANIFEST, manifest)
    return manifest


def cached_artifact(
    path: str | os.PathLike,
    params: Any,
    build_fn: Callable[[Path], Mapping | None],
    code: Iterable[ModuleType | str] = (),
    force: bool = False,
) -> Path:
    """Reuse the artifact folder at ``path`` if it was made with ``params`` and ``code`` and is intact; else build.

    ``build_fn(tmp_dir)`` writes its files into ``tmp_dir`` and may return extra manifest fields. The folder is
    renamed into place only after the manifest is written, so an interrupted build leaves no half artifact.
    """
    path = Path(path)
    key = artifact_key(params, code)
    if not force and path.exists():
        ok, reason = verify_artifact(path, key)
        if ok:
            return path
        warnings.warn(f"rebuilding {path}: {reason}", stacklevel=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".building", dir=path.parent))
    try:
        t0 = time.perf_counter()
        extra = build_fn(tmp)
        write_manifest(tmp, params, key, time.perf_counter() - t0, extra)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_manifest(path: str | os.PathLike, key: str | None = None) -> dict:
    """The manifest of a verified artifact; ArtifactError (with the reason) if it is missing, stale or corrupt."""
    ok, reason = verify_artifact(path, key)
    if not ok:
        raise ArtifactError(f"{path}: {reason}")
    return read_json(Path(path) / MANIFEST)


# --------------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------------
def save_table(df, path: str | os.PathLike, params: Any, note: str | None = None) -> Path:
    """Write a pandas DataFrame as CSV (atomically) with ``<name>.manifest.json`` beside it."""
    path = Path(path)
    atomic_write_text(path, df.to_csv(index=False))
    write_json(
        path.with_name(path.name + ".manifest.json"),
        {
            "file": path.name,
            "sha256": file_sha256(path),
            "rows": len(df),
            "columns": list(map(str, df.columns)),
            "params": params,
            "note": note,
            "provenance": provenance(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    return path


def load_table(path: str | os.PathLike):
    """Read a table written by ``save_table``, refusing one whose contents no longer match its manifest."""
    path = Path(path)
    man = path.with_name(path.name + ".manifest.json")
    if not path.exists() or not man.exists():
        raise ArtifactError(f"{path}: table or its manifest is missing")
    try:
        recorded = read_json(man)["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ArtifactError(
            f"{man}: unreadable table manifest ({type(err).__name__}: {err}); "
            f"rerun the notebook that writes {path.name}"
        ) from None
    if recorded != file_sha256(path):
        raise ArtifactError(f"{path}: contents do not match its manifest {man.name} (edited or corrupt)")
    return pd.read_csv(path)
