"""Notebook 06's controlled comparisons, one call each (issue 22): the architecture x initializer cells at
initialization, the mean-field prediction from the weights against what the caches show, and the Gaussian control.

* :func:`init_cell_caches`: each cell of :mod:`rsae_utils.subject.init_cells` harvested once on notebook 03's
  windows (its first ``cell_train_windows`` training windows and the held-out windows the sweep measures on) at
  the layers matching ``cfg.layers`` by fraction of depth; the model's per-tensor moments go into the cache's
  record, so the prediction needs no model on reruns.
* :func:`prediction_table`: :func:`rsae_utils.studies.why.meanfield.predict` for every cache whose weights are a
  random draw (re-randomized variants from the trained model's per-tensor statistics, step-0, the cells), next to
  the residual statistics measured on it.
* :func:`gaussian_table`: the SAE's explained variance on a Gaussian with each residual's mean and covariance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from rsae_utils import paths
from rsae_utils.params.nb03_sae import known_model_dims
from rsae_utils.sae.cache import TL_FORWARD, ActivationCache, token_mask
from rsae_utils.sae.harvest import planned_forward
from rsae_utils.store import cached_artifact
from rsae_utils.studies.why.caches import base_windows, harvest_once
from rsae_utils.studies.why.gaussian import gaussian_control
from rsae_utils.studies.why.meanfield import (
    moments_from_record,
    moments_record,
    predict,
    same_token_rate,
    scaled_embedding,
    scaled_outputs,
    weight_moments,
)
from rsae_utils.studies.why.sweep import Cell, sweep_spec, with_seeds
from rsae_utils.subject.init_cells import CELLS, init_cell_model, llama_config_of, matched_layers

CODE = ("rsae_utils.studies.why.controls", "rsae_utils.studies.why.meanfield", "rsae_utils.subject.init_cells")
RANDOM_RULE = ("rerandomized_incl_emb", "rerandomized_excl_emb")  # predicted from the trained per-tensor moments


# --------------------------------------------------------------------------------------------------------------
# Architecture x initializer at initialization
# --------------------------------------------------------------------------------------------------------------
def model_blocks(nb03: Any) -> int:
    """Blocks of notebook 03's model: known offline for its default models, else read from the loaded model."""
    dims = known_model_dims(nb03.cfg.model)
    return int(dims[0]) if dims else int(nb03.loaded_model().n_layers)


def with_depth(df: pd.DataFrame, caches: Mapping[str, ActivationCache], n_model: int) -> pd.DataFrame:
    """``df`` (with ``source`` and ``layer``) with ``n_layers`` and ``depth_fraction`` (layer / blocks) columns."""
    blocks = {s: int((c.manifest.get("variant_record") or {}).get("n_layers") or n_model) for s, c in caches.items()}
    out = df.copy()
    out["n_layers"] = out.source.map(blocks).fillna(n_model).astype(int)
    out["depth_fraction"] = out.layer / out.n_layers
    return out


def cell_layers(name: str, layers: Sequence[int], n_model: int) -> list[int]:
    """The layers of cell ``name`` matching ``layers`` of notebook 03's ``n_model``-layer model."""
    n_cell = CELLS[name]["n_layers"] or n_model
    return matched_layers(list(layers), n_model, n_cell)


def init_cell_caches(nb03: Any, cfg: Any, base: ActivationCache, n_model: int) -> dict[str, ActivationCache]:
    """{cell: its cache} for ``cfg.init_cells``, on ``base``'s windows (training split cut to
    ``cfg.cell_train_windows``, held-out to ``cfg.test_windows``), harvested once each."""
    m3 = nb03.cfg
    out = {}
    windows = base_windows(base, cfg.test_windows)
    windows["train"] = windows["train"][: int(cfg.cell_train_windows)]
    for name in cfg.init_cells:

        def make_model(name: str = name) -> tuple[Any, dict]:
            loaded = nb03.loaded_model()
            model, rec = init_cell_model(name, llama_config_of(loaded), len(nb03.tokenizer), cfg.cell_seed, m3.ctx)
            rec["moments"] = moments_record(weight_moments(model))
            return model, rec

        meta = {
            "model": f"init-cell-{name}",
            "revision": None,
            "variant": name,
            "seed": int(cfg.cell_seed),
            "variant_options": {"cell": name, "of": m3.model},
            **{k: base.manifest.get(k) for k in ("corpus_sha256", "corpus_source", "window_seed")},
        }
        arch = CELLS[name]["arch"]
        forward = planned_forward(m3.model, m3.device, "float32") if arch == "llama" else TL_FORWARD
        out[name] = harvest_once(
            meta,
            cell_layers(name, cfg.layers, n_model),
            windows,
            base.manifest["dtype"],
            paths.why_cell_cache_dir(nb03.profile, m3.model, name),
            make_model,
            m3.harvest_batch,
            forward,
        )
    nb03.release_model()
    return out


def cell_sweep_cells(cfg: Any, caches: Mapping[str, ActivationCache], n_model: int) -> list[Cell]:
    """The cells' SAEs: one per (cell, layer matching ``cfg.cell_sae_layers``) at the base width, on
    ``cfg.cell_train_tokens`` (one pass over the cell's training windows by default), at ``cfg.seed`` and each of
    ``cfg.extra_seeds``."""
    out = []
    for name in cfg.init_cells:
        for layer in cell_layers(name, cfg.cell_sae_layers, n_model):
            out.append(Cell("init", name, name, (), layer, int(cfg.base_expansion), int(cfg.cell_train_tokens)))
    return with_seeds(out, cfg.extra_seeds)


# --------------------------------------------------------------------------------------------------------------
# The prediction from the weights
# --------------------------------------------------------------------------------------------------------------
def _moments_for(nb03: Any, cache: ActivationCache, trained: dict[str, Any] | None) -> dict[str, Any] | None:
    rec = cache.manifest.get("variant_record") or {}
    if "moments" in rec:
        return moments_from_record(rec["moments"])
    v, opts = cache.variant, cache.manifest.get("variant_options") or {}
    if v in RANDOM_RULE and trained is not None:
        mom = scaled_embedding(trained, float(opts.get("embedding_scale", 1.0)))
        return scaled_outputs(mom, float(opts.get("output_scale", 1.0)))
    if v == "step0":
        return weight_moments(nb03.variant_model("step0", {})[0])
    return None


def prediction_table(
    nb03: Any, cfg: Any, caches: Mapping[str, ActivationCache], stats: pd.DataFrame, split: str = "train"
) -> pd.DataFrame:
    """Per (source, layer): the mean-field prediction of the residual's rms norm, its growth over the embedding
    and the token-identity share, next to the measured ones (``stats``: :func:`caches.residual_table`); for every
    cache whose weights are a random draw. Stored once per set of caches."""
    sources = [s for s, c in caches.items() if c.variant not in ("trained", "control")]
    params = {"caches": {s: caches[s].manifest_hash() for s in sources}, "split": split}

    def build(tmp: Any) -> None:
        need_trained = any(caches[s].variant in RANDOM_RULE for s in sources)
        trained = weight_moments(nb03.loaded_model().model) if need_trained else None
        rows = []
        for s in sources:
            cache = caches[s]
            mom = _moments_for(nb03, cache, trained)
            if mom is None:
                continue
            toks = cache.tokens(split)
            rate = same_token_rate(toks, token_mask(toks, nb03.exclude_tokens))
            pred = predict(mom, n_ctx=toks.shape[1], same_token=rate)
            n_layers = len(mom["blocks"])
            for layer in cache.layers:
                r = pred[pred.layer == int(layer)].iloc[0]
                rows.append(
                    {
                        "source": s,
                        "variant": cache.variant,
                        "layer": int(layer),
                        "n_layers": n_layers,
                        "depth_fraction": int(layer) / n_layers,
                        "same_token": rate,
                        "pred_rms": r.rms,
                        "pred_growth": r.growth,
                        "pred_token_share": r.token_share,
                        "pred_emb_share": r.emb_share,
                        "attn_write": r.attn_write,
                        "mlp_write": r.mlp_write,
                        "participation": r.participation,
                    }
                )
        nb03.release_model()
        pd.DataFrame(rows).to_csv(tmp / "prediction.csv", index=False)

    m3 = nb03.cfg
    path = cached_artifact(paths.why_prediction_dir(nb03.profile, m3.model), params, build, code=CODE)
    pred = pd.read_csv(path / "prediction.csv")
    cols = ["source", "layer", "token_share", "token_share_adj", "norm_rms", "effective_dim", "top_pc_share"]
    return pred.merge(stats[[c for c in cols if c in stats]], on=["source", "layer"], how="left")


# --------------------------------------------------------------------------------------------------------------
# The Gaussian control
# --------------------------------------------------------------------------------------------------------------
def gaussian_table(
    nb03: Any, cfg: Any, caches: Mapping[str, ActivationCache], cells: Sequence[Cell], sweep: pd.DataFrame
) -> pd.DataFrame:
    """For each cell (source, layer, base width, seed): the sweep's held-out EV (``sweep``: its rows per seed), the
    EV of the same SAE spec trained on a Gaussian with the residual's mean and covariance (drawn with the SAE's
    seed, so a second seed redraws the Gaussian too), and their difference ``ev_minus_gauss``."""
    m3 = nb03.cfg
    rows = []
    for c in cells:
        spec = sweep_spec(cfg, nb03.spec.matmul_dtype, c)
        out_dir = paths.why_sweep_sae_dir(nb03.profile, m3.model, m3.revision, c.source, c.layer, f"gauss-{spec.name}")
        g = gaussian_control(
            caches[c.source], c.layer, spec, out_dir, tuple(nb03.exclude_tokens), cfg.test_windows, spec.seed
        )
        real = sweep[(sweep.source == c.source) & (sweep.layer == c.layer) & (sweep["R"] == c.expansion)]
        real = real[real.seed == spec.seed] if "seed" in real else real
        ev = float(real.explained_variance.iloc[0]) if len(real) else float("nan")
        rows.append(
            {
                "source": c.source,
                "variant": c.variant,
                "layer": c.layer,
                "R": c.expansion,
                "train_tokens": c.n_tokens,
                "seed": spec.seed,
                "explained_variance": ev,
                **g,
                "ev_minus_gauss": ev - g["gauss_explained_variance"],
            }
        )
    return pd.DataFrame(rows)


def gaussian_cells(cfg: Any, extra: Sequence[Cell] = ()) -> list[Cell]:
    """The Gaussian control's cells: every variant in ``cfg.variants`` at ``cfg.gauss_layers`` and the base width
    and budget, at ``cfg.seed`` and, at ``cfg.seed_layers``, each of ``cfg.extra_seeds``, plus ``extra`` (the init
    cells' SAEs, with their own seeds)."""
    base = [
        Cell("width", int(cfg.base_expansion), v, (), int(x), int(cfg.base_expansion), int(cfg.train_tokens))
        for v in cfg.variants
        for x in cfg.gauss_layers
    ]
    return with_seeds(base, cfg.extra_seeds, cfg.seed_layers) + list(extra)
