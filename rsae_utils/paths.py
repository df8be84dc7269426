"""Where everything lives: the roots, and one function per kind of artifact.

Roots (environment variables override them; the tests point them at temporary folders):

* ``build/`` (``RSAE_BUILD_DIR``): per-profile work folders, ``build/<profile>/``;
* ``figures/`` (``RSAE_FIGURES_DIR``): the default profile's figures, ``figures/<profile>/`` for the others;
* ``~/.cache/rsae`` (``RSAE_CACHE_DIR``): converted model weights, tokenizers, the offline corpus; none of it
  depends on the profile, so tests with a temporary build folder still find them;
* ``notebooks/`` (``RSAE_NOTEBOOKS_DIR``).

The artifacts of the pipeline, by the stage that writes them (every stage reads only what an earlier one wrote)::

    02 toys      build/<p>/mmcs_sweep/                                            mmcs_sweep_dir
    02 frontier  build/<p>/frontier_sweep/ (SAEs on embedding rows)                frontier_sweep_dir
    03 cache     build/<p>/caches/<model>/<variant>-seed<S>/                      cache_dir
    03 train     build/<p>/saes/<model>/<variant>-seed<S>/<sae name>/             sae_dir
    03 metrics   build/<p>/metrics/<model>/<variant>-seed<S>/                     metrics_dir
    03 index     build/<p>/sae_runs.csv, build/<p>/metrics.csv                    sae_index, metrics_table
    04 autointerp build/<p>/autointerp/{records,units,tables}/                    autointerp_dir
    07 seeds     build/<p>/seed_saes/<model>/<variant>-seed<S>/<sae name>/        seed_sae_dir
    07 analyses  build/<p>/seed_stability/{calibration,matching,toy}/...          seed_stability_dir
    06 why       build/<p>/why_default/{caches,saes,stats}/...                  why_default_dir
    08 critique  build/<p>/critique/{saes/<model>__<variant>__L<layer>,tables}/     critique_dir
    04 LLM       build/llm_cache/ (``RSAE_LLM_CACHE``): one file per request      llm_response_cache_dir
    runner       build/<p>/executed/ (executed notebooks and stamps)              executed_dir
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def slug(text: str, max_len: int = 120) -> str:
    """``text`` made safe as one path component (model names, backend names)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")[:max_len] or "x"


# --------------------------------------------------------------------------------------------------------------
# Roots
# --------------------------------------------------------------------------------------------------------------
def repo_root() -> Path:
    """The repository checkout when the package is used from one (editable install), else the working dir."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() and (here / "notebooks").is_dir() else Path.cwd()


def build_dir() -> Path:
    env = os.environ.get("RSAE_BUILD_DIR")
    return Path(env).resolve() if env else repo_root() / "build"


def work_dir(profile: str, create: bool = True) -> Path:
    """Per-profile artifacts (activation caches, SAEs, auto-interp results): ``build/<profile>``."""
    path = build_dir() / profile
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir(profile: str, create: bool = True) -> Path:
    """``figures/`` for the default profile (committed); ``figures/<profile>/`` for the others."""
    env = os.environ.get("RSAE_FIGURES_DIR")
    base = Path(env).resolve() if env else repo_root() / "figures"
    path = base if profile == "default" else base / profile
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def notebooks_dir() -> Path:
    """The numbered notebooks; ``RSAE_NOTEBOOKS_DIR`` points elsewhere (the runner's own tests use it)."""
    env = os.environ.get("RSAE_NOTEBOOKS_DIR")
    return Path(env).resolve() if env else repo_root() / "notebooks"


def model_cache_dir() -> Path:
    """Converted model weights, tokenizers and the offline corpus: ``$RSAE_CACHE_DIR`` or ``~/.cache/rsae``."""
    env = os.environ.get("RSAE_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else Path.home() / ".cache" / "rsae"


# --------------------------------------------------------------------------------------------------------------
# Artifacts, by stage
# --------------------------------------------------------------------------------------------------------------
def executed_dir(profile: str) -> Path:
    """Executed notebooks and the runner's stamps."""
    return work_dir(profile) / "executed"


def mmcs_sweep_dir(profile: str) -> Path:
    """Notebook 02's cached sweep (one artifact)."""
    return work_dir(profile) / "mmcs_sweep"


def frontier_sweep_dir(profile: str) -> Path:
    """Notebook 02's cached SAE sweep on token-embedding rows and their matched Gaussian (one artifact)."""
    return work_dir(profile) / "frontier_sweep"


def model_slug(model: str, revision: str | None = None) -> str:
    """The folder name of a (model, revision) pair: ``pythia-70m@step0``."""
    return slug(f"{model}@{revision}" if revision else model)


def _variant_part(variant: str, variant_seed: int) -> str:
    return f"{variant}-seed{int(variant_seed)}"


def cache_dir(profile: str, model: str, revision: str | None, variant: str, variant_seed: int) -> Path:
    """Activation cache of one model variant (every layer, train and test splits): notebook 03's first stage."""
    return work_dir(profile) / "caches" / model_slug(model, revision) / _variant_part(variant, variant_seed)


def sae_dir(profile: str, model: str, revision: str | None, variant: str, variant_seed: int, name: str) -> Path:
    """One trained SAE (sae-lens format + training record); ``name`` from ``sae.train.sae_name``."""
    return work_dir(profile) / "saes" / model_slug(model, revision) / _variant_part(variant, variant_seed) / name


def seed_sae_dir(profile: str, model: str, revision: str | None, variant: str, variant_seed: int, name: str) -> Path:
    """One SAE of notebook 07's seed grid (sae-lens format + training record); kept apart from notebook 03's SAEs,
    whose index notebook 04 reads. ``name`` from ``sae.seeds.seed_sae_name``."""
    return work_dir(profile) / "seed_saes" / model_slug(model, revision) / _variant_part(variant, variant_seed) / name


def seed_stability_dir(profile: str, *parts: str) -> Path:
    """Notebook 07's cached analyses: L1 calibrations, seed matchings, the toy experiment."""
    return work_dir(profile).joinpath("seed_stability", *map(slug, parts))


def why_default_dir(profile: str, *parts: str) -> Path:
    """Notebook 06's artifacts: caches of variants made with other options, SAE metrics of the one-factor sweeps,
    residual-stream statistics."""
    return work_dir(profile).joinpath("why_default", *map(slug, parts))


def metrics_dir(profile: str, model: str, revision: str | None, variant: str, variant_seed: int) -> Path:
    """Held-out metrics of every SAE of one variant."""
    return work_dir(profile) / "metrics" / model_slug(model, revision) / _variant_part(variant, variant_seed)


def sae_index(profile: str) -> Path:
    """The index of notebook 03's SAEs (model, variant, label, layer, sae_dir, cache_dir): what notebook 04 reads."""
    return work_dir(profile) / "sae_runs.csv"


def existing_sae_index(profile: str) -> Path | None:
    """``sae_index(profile)`` when notebook 03 has written it, else None (creates no folder: for parameter checks)."""
    path = build_dir() / profile / "sae_runs.csv"
    return path if path.exists() else None


def metrics_table(profile: str) -> Path:
    """The tidy metrics table of notebook 03's last run."""
    return work_dir(profile) / "metrics.csv"


def autointerp_dir(profile: str) -> Path:
    """Notebook 04's records, scoring units and tables (what notebook 05 reads)."""
    return work_dir(profile) / "autointerp"


def critique_dir(profile: str, *parts: str) -> Path:
    """Notebook 08's measures: one artifact per SAE (``saes/<model>__<variant>__L<layer>``) and the summary
    ``tables``."""
    return work_dir(profile).joinpath("critique", *map(slug, parts))


def llm_response_cache_dir() -> Path:
    """On-disk cache of LLM endpoint responses: ``$RSAE_LLM_CACHE`` or ``build/llm_cache`` (shared by profiles:
    a response depends on the request only)."""
    env = os.environ.get("RSAE_LLM_CACHE")
    return Path(env) if env else build_dir() / "llm_cache"


def jobs_dir(profile: str) -> Path:
    """Logs and pickles of notebook 03's submitit jobs (``executor`` 'slurm' or 'submitit-local'); not artifacts."""
    return work_dir(profile) / "jobs"
