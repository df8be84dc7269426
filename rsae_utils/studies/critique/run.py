"""Notebook 08's measures of one SAE on its held-out split: what its latents are, without any LLM.

The critique of Heap et al. (PAPER.md section 3) holds that random-model latents are mostly single-token ones,
that auto-interp scores them well *because* "fires on token X" is easy to explain, and that trained models have
latents random ones lack (positional ones among them). For one SAE of notebook 03 this module measures:

* **positional latents** (:mod:`rsae_utils.studies.critique.positional_table`): every live latent's binned
  firing-rate test (:mod:`rsae_utils.studies.critique.positional_rate`: does it fire more often in some parts of the
  context?), the earlier eta^2 rule beside it (``*_eta2`` columns), its lag autocorrelation and ``is_boundary``;
  once per boundary view (position 0 of every context, the document-boundary token, left out or kept), and once more
  on activations whose positions were shuffled beforehand: the share of latents a rule flags there is its
  false-positive rate; the test again on random halves of the contexts;
* **token-identity scorers** (:func:`scorer_latents`) on a seeded sample of latents (the example sets of notebook
  04): intruder, detection and fuzzing with hard negatives (windows of the nearest decoder directions), active-token
  marking, the single-token explainer, and the token baseline itself; per latent its AUROC and ``example_boot``
  bootstrap resamples of it (the second stage of :func:`rsae_utils.autointerp.stats.hierarchical_ci`);
* **diagnostics** (:func:`diagnostics_row`): max decoder cosine, encoder-decoder cosine, relative reconstruction
  bias and L2 ratio of the reconstruction (boundary tokens left out, as in notebook 03's metrics).

:func:`critique_sae` stores the three as one artifact per SAE (``paths.critique_sae_dir``), keyed
by the content hashes of the SAE and the cache, the parameters and this code, so a rerun reuses finished SAEs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rsae_utils.autointerp.baseline import score_baseline, token_profile
from rsae_utils.autointerp.examples import LatentRecord, SparseActs, encode_sparse, sample_latents
from rsae_utils.autointerp.records import cache_identity, sae_identity
from rsae_utils.autointerp.stats import auroc, auroc_replicates
from rsae_utils.autointerp.token_scorers import (
    active_token_rows,
    hard_negative_windows,
    intruder_summary,
    intruder_trials,
    marking_precision,
    nearest_latents,
    score_intruder,
    score_single_token,
    single_token_explanation,
    with_negatives,
)
from rsae_utils.errors import ArtifactError, StageError
from rsae_utils.paths import critique_sae_dir
from rsae_utils.sae.cache import open_cache, token_mask
from rsae_utils.sae.codes import load_codes, reconstruct_from_codes
from rsae_utils.sae.metrics import reconstruct
from rsae_utils.sae.pipeline import trained_runs
from rsae_utils.sae.train import load_sae
from rsae_utils.store import cached_artifact, read_json, write_json
from rsae_utils.studies.critique.diagnostics import l2_ratio, relative_reconstruction_bias, weight_summary
from rsae_utils.studies.critique.positional_table import positional_table

# Scorer series -> the token baseline's scorer each is compared with (its "gap").
SCORERS = {
    "intruder": "detection",
    "hard-negative detection": "detection",
    "hard-negative fuzzing": "fuzzing",
    "active-token": "fuzzing",
    "single-token detection": "detection",
    "single-token fuzzing": "fuzzing",
}
BASELINES = {"detection": "token-baseline detection", "fuzzing": "token-baseline fuzzing"}
SERIES = tuple(BASELINES.values()) + tuple(SCORERS)
PARAM_KEYS = (
    "boundary",
    "n_perm",
    "n_levels",
    "max_lag",
    "alpha",
    "min_excess",
    "min_firing_rate",
    "rate_bins",
    "rate_min_expected",
    "min_tv",
    "fdr_q",
    "window_blocks",
    "window_halves",
    "boundary_min_share",
    "window_len",
    "max_contexts",
    "n_latents",
    "min_examples",
    "n_explain",
    "explain_pool",
    "n_bins",
    "per_bin",
    "n_negatives",
    "top_k_tokens",
    "mark_frac",
    "single_token_n",
    "single_token_threshold",
    "intruder_trials",
    "intruder_real",
    "n_neighbours",
    "example_boot",
    "duplicate_threshold",
    "seed",
)
CODE = (
    "rsae_utils.studies.critique.run",
    "rsae_utils.studies.critique.positional",
    "rsae_utils.studies.critique.positional_stats",
    "rsae_utils.studies.critique.positional_rate",
    "rsae_utils.studies.critique.positional_windows",
    "rsae_utils.studies.critique.positional_table",
    "rsae_utils.autointerp.token_scorers",
    "rsae_utils.autointerp.baseline",
    "rsae_utils.autointerp.scorers",
    "rsae_utils.autointerp.examples",
    "rsae_utils.autointerp.stats",
    "rsae_utils.tokenstats",
    "rsae_utils.studies.critique.diagnostics",
    "rsae_utils.sae.codes",
)
REBUILD = "rerun notebook 03 (make figures NB=03 FORCE=1) to rebuild it"


def _npz_key(series: str) -> str:
    return series.replace(" ", "_")


# --------------------------------------------------------------------------------------------------------------
# Token-identity scorers on sampled latents
# --------------------------------------------------------------------------------------------------------------
def _series_rows(
    sp: SparseActs, rec: LatentRecord, others: Sequence[LatentRecord], neighbours: Sequence[int], p: Mapping[str, Any]
) -> dict[str, tuple[list[dict], dict[str, float]]]:
    """{series: (scored rows, per-latent extras)} of one latent."""
    seed, mark = int(p["seed"]), float(p["mark_frac"])
    prof = token_profile(rec, int(p["top_k_tokens"]))
    out: dict[str, tuple[list[dict], dict[str, float]]] = {}
    for scorer, name in BASELINES.items():
        out[name] = (score_baseline(rec, scorer, seed=seed, mark_frac=mark, profile=prof), {})
    trials = intruder_trials(
        rec,
        others,
        n_trials=int(p["intruder_trials"]),
        n_real=int(p["intruder_real"]),
        exclude=sp.window_maxima(rec.latent)[0],
        seed=seed,
    )
    rows = score_intruder(rec, trials, prof)
    out["intruder"] = (rows, {"intruder_accuracy": intruder_summary(rows)["accuracy"] if rows else np.nan})
    hard = with_negatives(rec, hard_negative_windows(sp, rec.latent, neighbours, len(rec.negatives), seed))
    for scorer in ("detection", "fuzzing"):
        out[f"hard-negative {scorer}"] = (
            score_baseline(hard, scorer, seed=seed, mark_frac=mark, profile=prof),
            {"n_hard_negatives": len(hard.negatives)},
        )
    rows = active_token_rows(rec, prof, mark_frac=mark)
    prec = marking_precision(rows)
    out["active-token"] = (rows, {"precision": prec["precision"], "recall": prec["recall"]})
    expl = single_token_explanation(rec, int(p["single_token_n"]))
    for scorer in ("detection", "fuzzing"):
        out[f"single-token {scorer}"] = (
            score_single_token(rec, scorer, seed=seed, mark_frac=mark, explanation=expl),
            {},
        )
    return out


def scorer_latents(
    sp: SparseActs, W_dec: Any, p: Mapping[str, Any], meta: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]:
    """(per-latent table, sampled latent ids, {series: (n_latents, example_boot) AUROC resamples}).

    The table has one row per (latent, series): its AUROC, positives and negatives, the latent's top-token mass
    share over its explainer windows (``single_token``: at least ``single_token_threshold``), and series extras
    (intruder accuracy, hard negatives found, marking precision and recall)."""
    counts = {k: int(p[k]) for k in ("n_explain", "explain_pool", "n_bins", "per_bin", "n_negatives")}
    recs = sample_latents(sp, int(p["n_latents"]), int(p["min_examples"]), seed=int(p["seed"]), **counts)
    ids = np.array([r.latent for r in recs], dtype=np.int64)
    n_boot = int(p["example_boot"])
    reps = {s: np.full((len(recs), n_boot), np.nan) for s in SERIES}
    if not recs:
        return pd.DataFrame(), ids, reps
    k = max(1, min(int(p["n_neighbours"]), sp.n_latents - 1))
    nbrs, _ = nearest_latents(W_dec, ids, k=k)
    rng = np.random.default_rng([int(p["seed"]), 809])
    rows = []
    for i, rec in enumerate(recs):
        share = single_token_explanation(rec, 1).mass_share
        base = {
            **(meta or {}),
            "latent": rec.latent,
            "n_active_windows": rec.n_active_windows,
            "top_token_share": share,
            "single_token": bool(share >= float(p["single_token_threshold"])),
        }
        for name, (srows, extra) in _series_rows(sp, rec, recs, nbrs[i].tolist(), p).items():
            y = np.array([r["label"] for r in srows], dtype=int)
            s = np.array([r["probability"] for r in srows], dtype=float)
            reps[name][i] = auroc_replicates(y, s, n_boot, rng)
            rows.append(
                {
                    **base,
                    "scorer": name,
                    "auroc": auroc(y, s),
                    "n_pos": int(y.sum()),
                    "n_neg": int(y.size - y.sum()),
                    **extra,
                }
            )
    return pd.DataFrame(rows), ids, reps


# --------------------------------------------------------------------------------------------------------------
# Weight and reconstruction diagnostics
# --------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def diagnostics_row(
    sae: Any,
    acts: torch.Tensor,
    tokens: torch.Tensor,
    exclude_tokens: Sequence[int] = (),
    duplicate_threshold: float = 0.9,
    codes: Any = None,
) -> dict[str, float]:
    """:func:`weight_summary` of the SAE plus the relative reconstruction bias and the mean L2 ratio of its
    reconstruction of ``acts`` (..., d), tokens in ``exclude_tokens`` left out. ``codes``: the SAE's stored TopK
    codes on ``acts`` (:mod:`rsae_utils.sae.codes`), decoded instead of encoding again."""
    out = weight_summary(sae.W_enc, sae.W_dec, duplicate_threshold)
    keep = token_mask(torch.as_tensor(tokens), exclude_tokens).reshape(-1)
    x = torch.as_tensor(acts).reshape(-1, acts.shape[-1])[keep].float()
    x_hat = reconstruct(sae, x) if codes is None else reconstruct_from_codes(sae, codes, keep)
    return {
        **out,
        "rel_recon_bias": relative_reconstruction_bias(x, x_hat),
        "l2_ratio": l2_ratio(x, x_hat),
        "n_tokens": int(x.shape[0]),
    }


# --------------------------------------------------------------------------------------------------------------
# One SAE as an artifact; every SAE of an index
# --------------------------------------------------------------------------------------------------------------
@dataclass
class SAECritique:
    positional: pd.DataFrame
    latents: pd.DataFrame
    ids: np.ndarray
    replicates: dict[str, np.ndarray]
    diagnostics: dict[str, Any]
    path: Path
    halves: pd.DataFrame = field(default_factory=pd.DataFrame)  # positional counts on random halves of the contexts


def critique_sae(
    run: Mapping[str, Any],
    p: Mapping[str, Any],
    out_dir: str | Path,
    exclude_tokens: Sequence[int] = (),
    device: str = "cpu",
) -> SAECritique:
    """The three measures of the SAE in ``run`` (model, variant, layer, sae_dir, cache_dir), from its artifact under
    ``out_dir/saes`` when made with the same inputs, parameters and code, else computed now and stored."""
    p = {k: p[k] for k in PARAM_KEYS}
    model, variant, layer = str(run["model"]), str(run["variant"]), int(run["layer"])
    meta = {"model": model, "variant": variant, "layer": layer}
    key = {
        "sae_content": sae_identity(run["sae_dir"], True),
        "cache_content": cache_identity(run["cache_dir"], True),
        "layer": layer,
        "params": p,
        "exclude_tokens": [int(t) for t in exclude_tokens],
    }
    path = critique_sae_dir(out_dir, model, variant, layer)

    def build(tmp: Path) -> dict:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        sae = load_sae(run["sae_dir"], device=device)
        cache = open_cache(run["cache_dir"])
        acts, tokens = cache.acts(layer, "test"), cache.tokens("test")
        codes = load_codes(sae, run["sae_dir"], cache, layer, "test")  # notebook 03's, when it stored them
        sp = encode_sparse(
            sae,
            acts,
            tokens,
            window_len=int(p["window_len"]),
            chunk_tokens=2048,
            max_seqs=p["max_contexts"],
            codes=codes,
        )
        timings["encode"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        halves: list[dict] = []
        positional_table(sp, p, meta, halves).to_csv(tmp / "positional.csv", index=False)
        pd.DataFrame(halves).to_csv(tmp / "positional_halves.csv", index=False)
        timings["positional"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        lat, ids, reps = scorer_latents(sp, sae.W_dec.detach().cpu(), p, meta)
        lat.to_csv(tmp / "latents.csv", index=False)
        np.savez_compressed(tmp / "replicates.npz", latent=ids, **{_npz_key(s): r for s, r in reps.items()})
        timings["scorers"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        diag = diagnostics_row(sae, acts, tokens, exclude_tokens, float(p["duplicate_threshold"]), codes=codes)
        timings["diagnostics"] = time.perf_counter() - t0
        n_windows = sp.active_window_counts()
        diag = {
            **meta,
            **diag,
            "n_latents_total": sp.n_latents,
            "n_live": int((n_windows > 0).sum()),
            "n_eligible": int((n_windows >= int(p["min_examples"])).sum()),
            "n_sampled": int(ids.size),
            "n_windows": sp.n_windows,
        }
        write_json(tmp / "diagnostics.json", diag)
        return {"timings_s": {k: round(v, 2) for k, v in timings.items()}}

    cached_artifact(path, key, build, code=CODE)
    pos, lat = _read_csv(path / "positional.csv"), _read_csv(path / "latents.csv")
    halves = _read_csv(path / "positional_halves.csv")
    with np.load(path / "replicates.npz") as z:
        ids = z["latent"]
        reps = {s: z[_npz_key(s)] for s in SERIES}
    return SAECritique(pos, lat, ids, reps, read_json(path / "diagnostics.json"), path, halves)


def select_runs(profile: str, variants: Sequence[str], layers: Sequence[int] | None = None) -> pd.DataFrame:
    """Notebook 03's SAE index (absolute paths) restricted to ``variants`` and ``layers`` (None: all); StageError
    naming notebook 03 when it has not run or trained none of them."""
    try:
        runs = trained_runs(profile)
    except ArtifactError as err:
        raise StageError(
            f"notebook 08 reads notebook 03's SAEs and held-out caches: run notebook 03_sae_training "
            f"(profile {profile!r}) first; {err}"
        ) from None
    sel = runs[runs.variant.isin(list(variants))]
    if layers is not None:
        sel = sel[sel.layer.isin([int(x) for x in layers])]
    if sel.empty:
        raise StageError(
            f"notebook 03 (profile {profile!r}) trained no SAE for variants {list(variants)} and layers {layers}; it "
            f"has {sorted(set(runs.variant))} at layers {sorted(set(runs.layer))}"
        )
    return sel.reset_index(drop=True)


@dataclass
class CritiqueResult:
    positional: pd.DataFrame
    latents: pd.DataFrame
    diagnostics: pd.DataFrame
    # (variant, layer) -> (sampled latent ids, {series: (n_latents, example_boot) AUROC resamples})
    replicates: dict[tuple[str, int], tuple[np.ndarray, dict[str, np.ndarray]]] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    halves: pd.DataFrame = field(default_factory=pd.DataFrame)  # every SAE's positional counts on context halves


def run_critique(
    runs: pd.DataFrame,
    p: Mapping[str, Any],
    out_dir: str | Path,
    exclude_tokens: Sequence[int] = (),
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> CritiqueResult:
    """:func:`critique_sae` for every SAE in ``runs`` (notebook 03's index), tables concatenated."""
    pos, lat, diag, reps, halves = [], [], [], {}, []
    t0 = time.perf_counter()
    for _, run in runs.sort_values(["variant", "layer"], kind="stable").iterrows():
        t1 = time.perf_counter()
        res = critique_sae(run, p, out_dir, exclude_tokens, device)
        pos.append(res.positional)
        halves.append(res.halves)
        lat.append(res.latents)
        diag.append(res.diagnostics)
        reps[(str(run["variant"]), int(run["layer"]))] = (res.ids, res.replicates)
        if progress is not None:
            progress(f"{run['variant']} L{int(run['layer'])}: {time.perf_counter() - t1:.1f} s")
    timings = {"total": round(time.perf_counter() - t0, 1)}
    return CritiqueResult(_concat(pos), _concat(lat), pd.DataFrame(diag), reps, timings, _concat(halves))


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # an SAE without live or eligible latents wrote an empty table
        return pd.DataFrame()


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
