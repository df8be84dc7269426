"""Where things live: the build folder (executed notebooks, caches, SAEs) and the figures folder.

``RSAE_BUILD_DIR``, ``RSAE_FIGURES_DIR`` and ``RSAE_NOTEBOOKS_DIR`` override the defaults (tests point them
at temporary folders).
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository checkout when the package is used from one (editable install), else the working dir."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() and (here / "notebooks").is_dir() else Path.cwd()


def build_dir() -> Path:
    env = os.environ.get("RSAE_BUILD_DIR")
    return Path(env).resolve() if env else repo_root() / "build"


def work_dir(profile: str) -> Path:
    """Per-profile artifacts (activation caches, SAEs, auto-interp results): ``build/<profile>``."""
    path = build_dir() / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir(profile: str) -> Path:
    """``figures/`` for the default profile (committed); ``figures/<profile>/`` for the others."""
    env = os.environ.get("RSAE_FIGURES_DIR")
    base = Path(env).resolve() if env else repo_root() / "figures"
    path = base if profile == "default" else base / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def notebooks_dir() -> Path:
    """The numbered notebooks; ``RSAE_NOTEBOOKS_DIR`` points elsewhere (the runner's own tests use it)."""
    env = os.environ.get("RSAE_NOTEBOOKS_DIR")
    return Path(env).resolve() if env else repo_root() / "notebooks"
