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
    04 autointerp build/<p>/autointerp/                                           autointerp_dir
                   records/<model>__<variant>__L<layer>/                          autointerp_records_dir
                   units/<records key>/<scoring key>/<source>/<latent>.<kind>.json  autointerp_units_dir, unit_file
                   tables/<name>.csv                                              autointerp_tables_dir, table_file
    06 why       build/<p>/why_default/                                           why_default_dir
                   caches/<model>/<source>/                                       why_option_cache_dir
                   caches/gpt-neox-pythia70m-shape/<variant>/                     why_neox_cache_dir
                   caches/init-cells-<model>/<cell>/                              why_cell_cache_dir
                   prediction/<model>/                                            why_prediction_dir
                   stats/<model>/<source>/                                        why_stats_dir
                   saes/<model>/<source>/L<layer:02d>-<spec name>/                why_sweep_sae_dir
                   gaps.csv                                                       why_gaps_table
    07 seeds     build/<p>/seed_saes/<model>/<variant>-seed<S>/<sae name>/        seed_sae_dir
    07 analyses  build/<p>/seed_stability/                                        seed_stability_dir
                   calibration/<variant>/L<layer>-R<R>-k<k>/                      seed_calibration_dir
                   matching/<variant>/<sae name>/                                 seed_matching_dir
                   toy/, replicates/seed<S>/                                      seed_toy_dir, seed_replicate_dir
    08 critique  build/<p>/critique/                                              critique_dir
                   saes/<model>__<variant>__L<layer>/, tables/<name>.csv          critique_sae_dir, critique_table
    04 LLM       build/llm_cache/ (``RSAE_LLM_CACHE``): one file per request      llm_response_cache_dir
    runner       build/<p>/executed/ (executed notebooks and stamps)              executed_notebook, run_stamp
    readers      notebooks/executed/<name>.ipynb                                  executed_copy
    figures      figures/[<p>/]<name>.<ext>                                       figure_file
    models       ~/.cache/rsae/models/<gguf>-hf-f32/, corpus/site-packages-<key>/ converted_model_dir, corpus_cache_dir

Inside a stage's folder (autointerp, critique, seed analyses) the layout is a function of that folder (``root``):
the stage's code takes the folder as an argument, so a test can point it at a temporary one. No function here takes
``*parts``: a caller names what identifies an artifact, never how its folder is spelled.
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


def executed_notebook(profile: str, name: str) -> Path:
    """The executed copy of notebook ``name`` a run of ``profile`` wrote."""
    return executed_dir(profile) / f"{name}.ipynb"


def run_stamp(profile: str, name: str) -> Path:
    """The runner's stamp of notebook ``name`` (parameters, sources, outputs of its last run)."""
    return executed_dir(profile) / f"{name}.stamp.json"


def executed_copies_dir(nb_dir: Path | None = None) -> Path:
    """The default run's executed copies for readers: ``notebooks/executed`` (``nb_dir``: another notebooks folder)."""
    return (Path(nb_dir) if nb_dir is not None else notebooks_dir()) / "executed"


def executed_copy(name: str, nb_dir: Path | None = None) -> Path:
    """The readers' executed copy of notebook ``name``."""
    return executed_copies_dir(nb_dir) / f"{name}.ipynb"


def notebook_source(name: str, nb_dir: Path | None = None) -> Path:
    """The ``.py`` source of notebook ``name``."""
    return (Path(nb_dir) if nb_dir is not None else notebooks_dir()) / f"{name}.py"


def figure_file(profile: str, name: str, ext: str) -> Path:
    """One file of a figure or report (``ext``: png, pdf, csv, html, manifest.json, md)."""
    return figures_dir(profile) / f"{name}.{ext}"


def figure_links_root() -> Path:
    """The folder figure links are relative to: the one holding ``figures/`` (the repository in a checkout)."""
    return figures_dir("default", create=False).parent


def converted_model_dir(gguf_stem: str) -> Path:
    """A GGUF file converted once to a plain transformers folder (float32)."""
    return model_cache_dir() / "models" / f"{gguf_stem}-hf-f32"


def corpus_cache_dir(key: str) -> Path:
    """The offline site-packages corpus gathered under one filter (``key``: its parameters' hash)."""
    return model_cache_dir() / "corpus" / f"site-packages-{key}"


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
    return caches_root(profile) / model_slug(model, revision) / _variant_part(variant, variant_seed)


def caches_root(profile: str) -> Path:
    """Every activation cache of ``profile`` (what notebook 03's disk check counts as already there)."""
    return work_dir(profile) / "caches"


def sae_dir(profile: str, model: str, revision: str | None, variant: str, variant_seed: int, name: str) -> Path:
    """One trained SAE (sae-lens format + training record); ``name`` from ``sae.train.sae_name``."""
    return work_dir(profile) / "saes" / model_slug(model, revision) / _variant_part(variant, variant_seed) / name


def seed_sae_dir(profile: str, model: str, revision: str | None, variant: str, variant_seed: int, name: str) -> Path:
    """One SAE of notebook 07's seed grid (sae-lens format + training record); kept apart from notebook 03's SAEs,
    whose index notebook 04 reads. ``name`` from ``sae.seeds.seed_sae_name``."""
    return work_dir(profile) / "seed_saes" / model_slug(model, revision) / _variant_part(variant, variant_seed) / name


def seed_stability_dir(profile: str) -> Path:
    """Notebook 07's cached analyses: L1 calibrations, seed matchings, the toy experiment, the seed replicates."""
    return work_dir(profile) / "seed_stability"


def seed_calibration_dir(root: Path, variant: str, layer: int, expansion: int, k: int) -> Path:
    """The L1 calibration of one ReLU group of notebook 07 under ``root`` (``seed_stability_dir(profile)``)."""
    return Path(root) / "calibration" / slug(variant) / slug(f"L{int(layer)}-R{int(expansion)}-k{int(k)}")


def seed_matching_dir(root: Path, variant: str, sae_name: str) -> Path:
    """The matching of one group's seeds (named by its first SAE) under ``root`` (``seed_stability_dir``)."""
    return Path(root) / "matching" / slug(variant) / slug(sae_name)


def seed_toy_dir(profile: str) -> Path:
    """Notebook 07's toy experiment (one artifact)."""
    return seed_stability_dir(profile) / "toy"


def seed_replicates_dir(profile: str) -> Path:
    """Notebook 07's seed replicates of notebook 03's SAEs: ``seed<S>/`` folders laid out as notebook 04's."""
    return seed_stability_dir(profile) / "replicates"


def seed_replicate_dir(root: Path, seed: int) -> Path:
    """One replicate seed's auto-interp folder under ``root`` (``seed_replicates_dir(profile)``)."""
    return Path(root) / f"seed{int(seed)}"


def why_default_dir(profile: str) -> Path:
    """Notebook 06's artifacts: caches of variants made with other options, SAE metrics of the one-factor sweeps,
    residual-stream statistics, the gap table."""
    return work_dir(profile) / "why_default"


def why_option_cache_dir(profile: str, model: str, revision: str | None, source: str) -> Path:
    """The cache of a variant made with other options (``source``: the variant and its options' tag)."""
    return why_default_dir(profile) / "caches" / slug(model_slug(model, revision)) / slug(source)


def why_neox_cache_dir(profile: str, variant: str) -> Path:
    """The cache of the Pythia-shaped GPT-NeoX at initialization (recorded as ``variant``)."""
    return why_default_dir(profile) / "caches" / "gpt-neox-pythia70m-shape" / slug(variant)


def why_cell_cache_dir(profile: str, model: str, cell: str) -> Path:
    """The cache of one architecture x initializer cell at initialization (on ``model``'s windows)."""
    return why_default_dir(profile) / "caches" / slug(f"init-cells-{model_slug(model, None)}") / slug(cell)


def why_prediction_dir(profile: str, model: str) -> Path:
    """The mean-field prediction from the weights of every random cache of notebook 06."""
    return why_default_dir(profile) / "prediction" / slug(model_slug(model, None))


def why_stats_dir(profile: str, model: str, revision: str | None, source: str) -> Path:
    """Residual-stream statistics of one cache (``source``) of notebook 06."""
    # the source name as is (options' "+" kept), the folder name this artifact always had
    return why_default_dir(profile) / "stats" / slug(model_slug(model, revision)) / source


def why_sweep_sae_dir(profile: str, model: str, revision: str | None, source: str, layer: int, spec_name: str) -> Path:
    """The held-out metrics of one SAE of notebook 06's sweep (``spec_name``: ``SweepSpec.name``)."""
    folder = slug(f"L{int(layer):02d}-{spec_name}")
    return why_default_dir(profile) / "saes" / slug(model_slug(model, revision)) / slug(source) / folder


def why_gaps_table(profile: str) -> Path:
    """Notebook 06's gap to the trained model, per factor value."""
    return why_default_dir(profile) / "gaps.csv"


def budget_dir(profile: str) -> Path:
    """The training-budget study's SAE snapshots and measures (its caches live under :func:`caches_root`)."""
    return work_dir(profile) / "budget"


def budget_cache_dir(profile: str, model: str, revision: str | None, variant: str, variant_seed: int) -> Path:
    """The training-budget study's activation cache of one variant (its own corpus and windows)."""
    return caches_root(profile) / "budget" / model_slug(model, revision) / _variant_part(variant, variant_seed)


def budget_sae_dir(profile: str, model: str, revision: str | None, variant: str, name: str) -> Path:
    """One SAE snapshot of the training-budget study; ``name`` from ``studies.budget.run.snapshot_name``."""
    return budget_dir(profile) / "saes" / model_slug(model, revision) / slug(variant) / slug(name)


def budget_measures_dir(sae: Path) -> Path:
    """The measures of one budget-study SAE (beside it, one artifact per SAE)."""
    return Path(sae).with_name(Path(sae).name + ".measures")


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


def rerun_03(profile: str) -> str:
    """What rebuilds notebook 03's index and SAEs (for messages about them)."""
    return f"rerun notebook 03: make figures NB=03 PROFILE={profile}"


def metrics_table(profile: str) -> Path:
    """The tidy metrics table of notebook 03's last run."""
    return work_dir(profile) / "metrics.csv"


def autointerp_dir(profile: str) -> Path:
    """Notebook 04's records, scoring units and tables (what notebook 05 reads)."""
    return work_dir(profile) / "autointerp"


def autointerp_records_root(root: Path) -> Path:
    """Every SAE's sampled latent records under ``root`` (``autointerp_dir(profile)``, or a replicate's folder)."""
    return Path(root) / "records"


def autointerp_records_dir(root: Path, model: str, variant: str, layer: int) -> Path:
    """One SAE's sampled latent records under ``root``."""
    return autointerp_records_root(root) / slug(f"{model}__{variant}__L{int(layer)}")


def autointerp_units_dir(root: Path, records_key: str, scoring_key: str) -> Path:
    """The scoring units of one SAE's records (``records_key``) under the scoring parameters (``scoring_key``)."""
    return Path(root) / "units" / records_key / scoring_key


def unit_file(units_dir: Path, source: str, latent: int, kind: str) -> Path:
    """One scoring unit: ``kind`` ('explanation' or a scorer) of ``latent`` by ``source`` (the token baseline or
    an LLM backend's name)."""
    return Path(units_dir) / slug(source) / f"{int(latent)}.{kind}.json"


def autointerp_tables_dir(root: Path) -> Path:
    """Notebook 04's tables (examples, latents, latent_stats, unparsable) under ``root``."""
    return Path(root) / "tables"


def table_file(tables_dir: Path, name: str) -> Path:
    """The table ``name`` in a folder of tables (``autointerp_tables_dir``, ``critique_tables_dir``)."""
    return Path(tables_dir) / f"{name}.csv"


def table_manifest(table: Path) -> Path:
    """The manifest ``store.save_table`` writes beside a table: ``<name>.csv.manifest.json``."""
    return Path(table).with_name(Path(table).name + ".manifest.json")


def critique_dir(profile: str) -> Path:
    """Notebook 08's measures: one artifact per SAE (``critique_sae_dir``) and the summary tables."""
    return work_dir(profile) / "critique"


def critique_sae_dir(root: Path, model: str, variant: str, layer: int) -> Path:
    """Notebook 08's measures of one SAE under ``root`` (``critique_dir(profile)``)."""
    return Path(root) / "saes" / slug(f"{model}__{variant}__L{int(layer)}")


def critique_tables_dir(profile: str) -> Path:
    """Notebook 08's summary tables."""
    return critique_dir(profile) / "tables"


def critique_table(profile: str, name: str) -> Path:
    """One of notebook 08's summary tables."""
    return table_file(critique_tables_dir(profile), name)


def llm_response_cache_dir() -> Path:
    """On-disk cache of LLM endpoint responses: ``$RSAE_LLM_CACHE`` or ``build/llm_cache`` (shared by profiles:
    a response depends on the request only)."""
    env = os.environ.get("RSAE_LLM_CACHE")
    return Path(env) if env else build_dir() / "llm_cache"


def jobs_dir(profile: str) -> Path:
    """Logs and pickles of notebook 03's submitit jobs (``executor`` 'slurm' or 'submitit-local'); not artifacts."""
    return work_dir(profile) / "jobs"
