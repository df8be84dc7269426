"""Reproducibility: seeds, stable hashes of parameters and code, and provenance records."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import json
import platform
import random
import subprocess
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import numpy as np
import torch

from rsae_utils import paths

TRACKED_PACKAGES = ("torch", "numpy", "sae-lens", "transformer-lens", "transformers", "pandas", "matplotlib", "plotly")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator seeded the same way for explicit use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON types (dict keys as sorted strings; numpy, tensors and ``to_dict()`` objects unpacked):
    what :func:`stable_hash` hashes and the store writes."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    return obj


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of a JSON-able object that does not depend on dict order or process."""
    text = json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def code_hash(modules: Iterable[ModuleType | str]) -> str:
    """Hash of the source of the given modules, so cached results go stale when the code that made them changes."""
    h = hashlib.sha256()
    for mod in modules:
        if isinstance(mod, str):
            mod = sys.modules.get(mod) or __import__(mod, fromlist=["_"])
        h.update(mod.__name__.encode())
        h.update(inspect.getsource(mod).encode())
    return h.hexdigest()[:16]


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.lru_cache(maxsize=1)
def git_revision() -> dict[str, Any]:
    """The checkout's commit and whether it had uncommitted changes outside ``figures/`` (None outside git)."""
    root = paths.repo_root()  # looked up at call time, so a test can point it at a scratch repository

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    rev = git("rev-parse", "HEAD")
    # Figures are outputs: the ones a run has just rewritten must not make the next figure's checkout look edited.
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)figures")
    return {"git_rev": rev, "git_dirty": None if status is None else bool(status)}


def provenance() -> dict[str, Any]:
    """What made an artifact: package versions, Python, platform and git revision."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        **git_revision(),
        "torch_threads": torch.get_num_threads(),
    }
