"""The tidy tables of an auto-interp run: per-latent token statistics, per-latent scores, unparsable answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from rsae_utils.autointerp import stats
from rsae_utils.autointerp.baseline import BASELINE_NAME
from rsae_utils.autointerp.examples import LatentRecord, explain_token_stats
from rsae_utils.autointerp.prompts import Decode
from rsae_utils.tokenstats import entropy, position_concentration, token_mass, window_resampled


def latent_stats_row(rec: LatentRecord, decode: Decode, ctx: int, threshold: float, top_k: int = 5) -> dict:
    toks, acts, pos = explain_token_stats(rec)
    ids, mass = token_mass(toks, acts)
    share = mass / mass.sum() if mass.size else mass
    names = decode(ids[:top_k].tolist()) if ids.size else []
    return {
        "latent": rec.latent,
        "n_active_windows": rec.n_active_windows,
        "entropy_nats": entropy(mass),
        "top_token_share": float(share[0]) if share.size else float("nan"),
        "single_token": bool(share.size and share[0] >= threshold),
        "n_distinct_tokens": int(ids.size),
        "position_concentration": position_concentration(pos, acts, ctx),
        # The explainer windows resampled: the part of a cell's interval that the choice of windows makes.
        **dict(
            zip(
                ("entropy_window_sd", "single_token_window_p"),
                window_resampled([(w.tokens, w.acts) for w in rec.explain], threshold, seed=rec.latent),
                strict=True,
            )
        ),
        "top_tokens": " | ".join(f"{n!r} {s:.0%}" for n, s in zip(names, share[:top_k], strict=True)),
    }


KEYS = ["model", "variant", "layer", "latent", "scorer", "backend"]


def per_latent_table(
    examples: pd.DataFrame, latent_stats: pd.DataFrame, explanations: Mapping[tuple, str] | None = None
) -> pd.DataFrame:
    """One row per (model, variant, layer, latent, scorer, backend): AUROC, balanced accuracy, counts, stats."""
    if examples.empty:
        return pd.DataFrame(columns=[*KEYS, "auroc", "balanced_accuracy", "n_scored", "n_unparsable"])
    rows = []
    for key, g in examples.groupby(KEYS, sort=True):
        ok = g[~g["unparsable"].astype(bool)]
        rows.append(
            {
                **dict(zip(KEYS, key, strict=True)),
                "auroc": stats.auroc(ok["label"], ok["probability"]),
                "balanced_accuracy": stats.balanced_accuracy(ok["label"], ok["probability"]),
                "n_scored": len(g),
                "n_unparsable": int(g["unparsable"].astype(bool).sum()),
                "n_pos": int((g["label"] == 1).sum()),
            }
        )
    out = pd.DataFrame(rows)
    if explanations is not None:
        out["explanation"] = [
            explanations.get((r.model, r.variant, int(r.layer), int(r.latent), r.backend), "") for r in out.itertuples()
        ]
    if not latent_stats.empty:
        out = out.merge(latent_stats, on=["model", "variant", "layer", "latent"], how="left")
    return out


def unparsable_table(examples: pd.DataFrame) -> pd.DataFrame:
    """Unparsable answers per (model, variant, layer, scorer, backend)."""
    cols = ["model", "variant", "layer", "scorer", "backend"]
    if examples.empty:
        return pd.DataFrame(columns=[*cols, "n_answers", "n_unparsable", "share_unparsable"])
    g = examples.assign(u=examples["unparsable"].astype(bool)).groupby(cols, sort=True)["u"]
    out = pd.DataFrame({"n_answers": g.size(), "n_unparsable": g.sum().astype(int)}).reset_index()
    out["share_unparsable"] = out["n_unparsable"] / out["n_answers"]
    return out


def run_models(res: Any) -> list[str]:
    """The subject models of a finished run, sorted."""
    return sorted(res.latents["model"].unique())


def run_backends(res: Any) -> list[str]:
    """The backends of a finished run, LLMs first, the token baseline last."""
    return sorted(res.latents["backend"].unique(), key=lambda b: (b == BASELINE_NAME, b))


def run_note(res: Any, profile: str) -> str:
    """The caption of notebook 05's figures: who explained and scored what, and where it differs from the paper."""
    p = res.params
    llms = [b for b in run_backends(res) if b != BASELINE_NAME]
    note = (
        f"{profile} profile: explainer/scorer {', '.join(llms) or 'none'} + token baseline; "
        f"{', '.join(run_models(res))}; {p['sampling']['n_latents']} latents/SAE ({p['llm']['llm_n_latents']} "
        f"LLM-scored), {p['sampling']['n_bins']}x{p['sampling']['per_bin']} positives + "
        f"{p['sampling']['n_negatives']} negatives each"
    )
    if profile != "paper":
        note += ". Not the paper's setting (Llama-3.1-70B, Pythia, 10M tokens): see the notebook text."
    return note
