"""Sampled-latent records of one SAE: its inputs verified and identified by content, latents sampled, stored.

Records are an artifact under ``out_dir/records`` keyed by the content hashes of the SAE and the activation cache
they read (each checked against its manifest when the key is computed) plus the sampling parameters and code: a
damaged input is refused with an error naming the file, and records made before a repair are never reused after it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from rsae_utils.autointerp.examples import LatentRecord, encode_sparse, sample_latents
from rsae_utils.paths import autointerp_records_dir
from rsae_utils.sae.cache import open_cache as open_cache_folder
from rsae_utils.sae.codes import load_codes
from rsae_utils.store import artifact_key, cached_artifact, content_hash, read_json, verify_artifact, write_json

REBUILD = "rerun notebook 03 (make figures NB=03 FORCE=1) to rebuild it"


def sae_identity(path: str | Path, strict: bool) -> Any:
    """The content hash of a verified SAE folder (ArtifactError naming the damaged file otherwise). Records are
    keyed by it, so an SAE rebuilt after damage gives new records. ``strict=False`` (in-memory loaders in tests)
    lets a name that is no folder stand for itself."""
    if not strict and not Path(path).exists():
        return str(path)
    return content_hash(path, rerun=REBUILD)


def cache_identity(path: str | Path, strict: bool) -> Any:
    """The content hash of a verified activation cache (every shard and the tokens re-hashed against its
    manifest; CacheError naming the damaged files otherwise)."""
    if not strict and not Path(path).exists():
        return str(path)
    cache = open_cache_folder(path, check_hash=True)  # its CacheError names the files and says to rerun 03
    return cache.content_id()


def build_records(
    sae: Any, cache: Any, layer: int, sampling: Mapping[str, Any], chunk_tokens: int = 2048, codes: Any = None
) -> tuple[list[LatentRecord], dict[str, Any]]:
    """Sample latents of one SAE on the cache's ``split`` (default: held-out ``test``); (records, summary).
    ``codes``: the SAE's stored TopK codes on that split (:mod:`rsae_utils.sae.codes`), read instead of encoding."""
    tokens = cache.tokens(sampling["split"])
    acts = cache.acts(layer, sampling["split"])
    sp = encode_sparse(
        sae,
        acts,
        tokens,
        window_len=sampling["window_len"],
        chunk_tokens=chunk_tokens,
        max_seqs=sampling["max_contexts"],
        codes=codes,
    )
    counts = {k: sampling[k] for k in ("n_explain", "explain_pool", "n_bins", "per_bin", "n_negatives")}
    recs = sample_latents(sp, sampling["n_latents"], sampling["min_examples"], seed=sampling["seed"], **counts)
    n_active = sp.active_window_counts()
    summary = {
        "n_windows": sp.n_windows,
        "n_latents_total": sp.n_latents,
        "n_eligible": int((n_active >= sampling["min_examples"]).sum()),
        "n_dead": int((n_active == 0).sum()),
        "n_sampled": len(recs),
        "ctx": sp.ctx,
    }
    return recs, summary


def _round_record(d: dict) -> dict:
    for key in ("explain", "positives", "negatives"):
        for w in d[key]:
            w["acts"] = [round(a, 4) for a in w["acts"]]
            w["max_act"] = round(w["max_act"], 4)
    return d


def _records_artifact(run: Mapping[str, Any], sampling: Mapping[str, Any], out_dir: Path, strict: bool) -> tuple:
    """(params, code, folder) of one SAE's records artifact."""
    params = {
        "sae_content": sae_identity(run["sae_dir"], strict),
        "cache_content": cache_identity(run["cache_dir"], strict),
        "layer": int(run["layer"]),
        "sampling": {k: v for k, v in sampling.items() if k != "device"},
    }
    code = ("rsae_utils.autointerp.examples", "rsae_utils.sae.codes")
    return params, code, autointerp_records_dir(out_dir, run["model"], run["variant"], run["layer"])


def records_ready(run: Mapping[str, Any], sampling: Mapping[str, Any], out_dir: Path) -> bool:
    """True when ``out_dir`` holds valid records of this SAE made with these sampling parameters (reused as is)."""
    params, code, path = _records_artifact(run, sampling, out_dir, True)
    return verify_artifact(path, artifact_key(params, code))[0]


def load_or_build_records(
    run: Mapping[str, Any],
    sampling: Mapping[str, Any],
    out_dir: Path,
    load_sae: Callable,
    open_cache: Callable,
    strict: bool = True,
) -> tuple[list[LatentRecord], dict[str, Any], str]:
    """Records of one SAE from ``out_dir/records`` when their key matches, else sampled now; (records, summary, key).

    The key holds the content hashes of the SAE and the cache, checked now against their manifests: a damaged
    input is refused (naming the file), and records made before a repair are never reused after it.
    """
    params, code, path = _records_artifact(run, sampling, out_dir, strict)

    def build(tmp: Path) -> dict:
        sae = load_sae(run["sae_dir"])
        if hasattr(sae, "to"):
            sae = sae.to(sampling["device"])
        cache = open_cache(run["cache_dir"])
        # Notebook 03's folders: the codes it stored (or stores now) for this SAE; in-memory test loaders: none.
        codes = load_codes(sae, run["sae_dir"], cache, int(run["layer"]), sampling["split"]) if strict else None
        recs, summary = build_records(sae, cache, int(run["layer"]), sampling, codes=codes)
        summary = {"model": str(run["model"]), "variant": str(run["variant"]), "layer": int(run["layer"]), **summary}
        write_json(
            tmp / "records.json",
            {"summary": summary, "records": [_round_record(r.to_dict()) for r in recs]},
            compact=True,
        )
        return {"summary": summary}

    cached_artifact(path, params, build, code=code)
    data = read_json(path / "records.json")
    recs = [LatentRecord.from_dict(d) for d in data["records"]]
    return recs, data["summary"], artifact_key(params, code)


def sampling_table(latent_stats: pd.DataFrame) -> pd.DataFrame:
    """Per SAE (model, variant, layer): how the scored latents were drawn. ``dropped_share`` is the share of the
    latents that fire somewhere in the split but in fewer than ``min_examples`` windows (or in every window), so
    could not be sampled: the paper's protocol (10 quantile bins x 10 positives, non-activating negatives) needs
    latents with enough activating windows, which biases the sample towards frequent latents."""
    keys = [k for k in ("model", "variant", "layer") if k in latent_stats]
    first = latent_stats.groupby(keys, sort=True).first()
    out = pd.DataFrame(
        {
            "windows": first["n_windows"],
            "latents": first["n_latents_total"],
            "dead_on_split": first["n_dead"],
            "eligible": first["n_eligible"],
            "sampled": latent_stats.groupby(keys, sort=True)["latent"].size(),
        }
    )
    live = (out["latents"] - out["dead_on_split"]).clip(lower=1)
    out["dropped_share"] = 1.0 - out["eligible"] / live
    return out.reset_index()
