"""The one artifact store: atomic writes, manifests, and reuse of finished work.

Every artifact is a folder with a ``manifest.json`` written *last*: it records the parameters and code hash that
made the artifact (its *key*), provenance (versions, git revision), the runtime, and the sha256 and size of each
file. A folder is reused only when its key matches and every file still has the recorded size and hash; a stale
or corrupt folder is rebuilt with a warning, never silently used. Folders are built in a temporary sibling and
renamed into place, so an interrupted run leaves either the old artifact or nothing; once in place they get the
modes a plain ``mkdir``/``open`` would give under the umask (a group sharing a build folder can read them).

Inside a notebook run by the runner, every artifact made or reused (and every table and activation cache) is
noted in the file ``$RSAE_ARTIFACT_LOG``; the runner records those artifacts' files in its stamp
(:func:`artifact_records`) and checks them before it calls a notebook up to date (:func:`artifacts_changed`).
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
ARTIFACT_LOG_ENV = "RSAE_ARTIFACT_LOG"  # set by the runner for a notebook's kernel: where artifacts are noted


# --------------------------------------------------------------------------------------------------------------
# Atomic file writes
# --------------------------------------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike) -> None:
    """Give ``path`` (and, for a folder, everything in it) the modes a plain mkdir/open would: mkdtemp makes
    folders 0700 and some writers (safetensors) files 0600, which a group sharing the build folder cannot read."""
    mask = _umask()
    path = Path(path)
    if not path.is_dir():
        os.chmod(path, 0o666 & ~mask)
        return
    os.chmod(path, 0o777 & ~mask)
    for root, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(Path(root) / d, 0o777 & ~mask)
        for f in files:
            os.chmod(Path(root) / f, 0o666 & ~mask)


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
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return False, f"unreadable manifest {manifest_path} (not an artifact manifest: {str(manifest)[:60]})"
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
            note_artifact(path)
            return path
        warnings.warn(f"rebuilding {path}: {reason}", stacklevel=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".building", dir=path.parent))
    try:
        t0 = time.perf_counter()
        extra = build_fn(tmp)
        write_manifest(tmp, params, key, time.perf_counter() - t0, extra)
        apply_umask(tmp)
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
    note_artifact(path)
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
    note_artifact(path)
    return path


def load_table(path: str | os.PathLike, rerun: str = ""):
    """Read a table written by ``save_table``, refusing one whose contents no longer match its manifest;
    ``rerun`` says what rebuilds it (default: the notebook that writes it)."""
    path = Path(path)
    man = path.with_name(path.name + ".manifest.json")
    rerun = rerun or f"rerun the notebook that writes {path.name}"
    if not path.exists() or not man.exists():
        raise ArtifactError(f"{path}: table or its manifest is missing; {rerun}")
    try:
        recorded = read_json(man)["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ArtifactError(f"{man}: unreadable table manifest ({type(err).__name__}: {err}); {rerun}") from None
    if recorded != file_sha256(path):
        raise ArtifactError(f"{path}: contents do not match its manifest {man.name} (edited or corrupt); {rerun}")
    return pd.read_csv(path)


# --------------------------------------------------------------------------------------------------------------
# What a notebook run used: noted in the kernel, recorded in the runner's stamp, checked before skipping a rerun
# --------------------------------------------------------------------------------------------------------------
def note_artifact(path: str | os.PathLike) -> None:
    """Note ``path`` (an artifact folder, a table, an activation cache) in ``$RSAE_ARTIFACT_LOG`` when the runner
    set it; nothing otherwise. One short appended line: appends of that size do not interleave."""
    log = os.environ.get(ARTIFACT_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(str(Path(path).resolve()) + "\n")


def noted_artifacts(log: str | os.PathLike) -> list[Path]:
    """The distinct paths noted in ``log``, in first-noted order."""
    try:
        lines = Path(log).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [Path(p) for p in dict.fromkeys(line.strip() for line in lines if line.strip())]


def _manifest_of(path: Path) -> Path:
    return path / MANIFEST if path.is_dir() else path.with_name(path.name + ".manifest.json")


def manifest_files(path: str | os.PathLike) -> dict[str, tuple[int | None, str]]:
    """``{file relative to the artifact's folder: (bytes or None, sha256)}`` as the manifest of ``path`` records
    them: a store folder (``files``), an activation cache (``shards`` and ``tokens_file``) or a table (``sha256``).
    ValueError when the manifest is unreadable or none of these."""
    path = Path(path)
    man = read_json(_manifest_of(path))  # OSError / ValueError: unreadable
    out: dict[str, tuple[int | None, str]] = {}
    if not isinstance(man, dict):
        raise ValueError("not a manifest")
    if path.is_dir() and isinstance(man.get("files"), dict):
        recs = [{"file": name, **rec} for name, rec in man["files"].items() if isinstance(rec, dict)]
    elif path.is_dir() and isinstance(man.get("shards"), list):
        recs = [r for r in [*man["shards"], man.get("tokens_file")] if isinstance(r, dict)]
    elif not path.is_dir() and isinstance(man.get("sha256"), str):
        recs = [{"file": path.name, "sha256": man["sha256"]}]
    else:
        raise ValueError("not an artifact, cache or table manifest")
    for rec in recs:
        if not isinstance(rec.get("file"), str) or not isinstance(rec.get("sha256"), str):
            raise ValueError(f"a record without file and sha256: {str(rec)[:80]}")
        size = rec.get("bytes")
        out[rec["file"]] = (int(size) if isinstance(size, int) else None, rec["sha256"])
    return out


def _stamp_key(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def artifact_records(noted: Iterable[Path], root: Path) -> dict[str, dict[str, list]]:
    """What the runner's stamp keeps of the artifacts a notebook used: ``{path (relative to ``root`` when under
    it): {file: [bytes, mtime_ns, sha256]}}``, sizes and hashes from each manifest, mtimes from the disk. An
    artifact gone or damaged by the end of the run is left out (the run did not end up using it)."""
    out: dict[str, dict[str, list]] = {}
    for path in noted:
        base = path if path.is_dir() else path.parent
        try:
            files = {}
            for name, (size, sha) in manifest_files(path).items():
                st = (base / name).stat()
                if size is not None and st.st_size != size:
                    raise ValueError(f"{name}: size differs from its manifest")
                files[name] = [st.st_size, st.st_mtime_ns, sha]
        except (OSError, ValueError):
            continue
        out[_stamp_key(path, root)] = files
    return out


def artifacts_changed(records: Mapping[str, Mapping[str, list]], root: Path) -> str | None:
    """Why recorded artifacts no longer stand (a manifest unreadable or rewritten, a file missing, of another
    size, or rewritten with other bytes), or None. Sizes are always checked; a file is hashed only when its
    modification time moved, so an untouched build costs one stat per file."""
    for key, files in records.items():
        path = Path(key) if Path(key).is_absolute() else root / key
        base = path if path.is_dir() else path.parent
        try:
            now = manifest_files(path)
        except (OSError, ValueError) as err:
            return f"artifact {path}: unreadable manifest ({err})"
        for name, (size, mtime_ns, sha) in files.items():
            f = base / name
            if now.get(name, (None, None))[1] != sha:
                return f"artifact {path}: its manifest no longer records {name} as this run left it"
            try:
                st = f.stat()
            except OSError:
                return f"artifact {path}: file {f} is missing"
            if st.st_size != size:
                return f"artifact {path}: file {f} has {st.st_size} bytes, {size} when recorded (damaged)"
            if st.st_mtime_ns != mtime_ns and file_sha256(f) != sha:
                return f"artifact {path}: file {f} was rewritten with other bytes (damaged)"
    return None
