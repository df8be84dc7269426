"""The auto-interp run: SAEs -> latent examples -> explanations -> detection/fuzzing scores -> tidy tables.

Layout under ``out_dir`` (``paths.autointerp_dir(profile)`` in the notebooks)::

    records/<model>__<variant>__L<layer>/records.json   sampled latents and their windows (artifact + manifest)
    units/<records key>/<scoring key>/<backend>/<latent>.<scorer>.json   one finished scoring unit
    units/<records key>/<scoring key>/<backend>/<latent>.explanation.json
    tables/examples.csv  latents.csv  latent_stats.csv  unparsable.csv   (+ .manifest.json each)

Resuming: a unit (variant, layer, latent, scorer, backend) is written atomically when it finishes and reused
whenever its keys match (records key = SAE + cache content hashes + sampling parameters + sampling code, see
:mod:`~rsae_utils.autointerp.records`; scoring key =
scoring parameters + prompt/scorer code), so an interrupted run loses at most the unit in flight (and the HTTP
backend's own response cache keeps even that unit's finished requests). The tables are rebuilt from the units at
the end of every run. An LLM unit none of whose answers parsed is not stored (a rerun asks again), and a backend
whose share of unparsable answers exceeds ``max_unparsable_share`` fails the run (:class:`AnswersUnparsable`),
after the tables are written for inspection.

Probabilities: the LLM rows hold P(1) / (P(0) + P(1)); the token-baseline rows hold its score in [0, 1]
(see ``baseline``). AUROC uses only their order; balanced accuracy thresholds both at 0.5.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rsae_utils.autointerp import baseline as bl
from rsae_utils.autointerp.examples import LatentRecord
from rsae_utils.autointerp.llm.base import LLMBackend
from rsae_utils.autointerp.llm.spec import make_backend
from rsae_utils.autointerp.prompts import Decode, TokenDecoder
from rsae_utils.autointerp.records import load_or_build_records
from rsae_utils.autointerp.scorers import SCORERS, explain, score_with_backend
from rsae_utils.autointerp.tables import latent_stats_row, per_latent_table, unparsable_table
from rsae_utils.errors import AnswersUnparsable, ParameterError
from rsae_utils.paths import slug
from rsae_utils.repro import code_hash, stable_hash
from rsae_utils.sae.cache import open_cache as open_cache_folder
from rsae_utils.sae.train import load_sae as load_sae_folder
from rsae_utils.store import load_table, read_json, save_table, write_json
from rsae_utils.subject.models import load_tokenizer

RUN_COLUMNS = ("model", "variant", "layer", "sae_dir", "cache_dir")
SCORING_CODE = ("rsae_utils.autointerp.prompts", "rsae_utils.autointerp.scorers", "rsae_utils.autointerp.baseline")

# The 04_autointerp parameters each part of the run reads (their values live in rsae_utils.params.nb04_autointerp).
SAMPLING_KEYS = (
    "n_latents",
    "min_examples",
    "n_explain",
    "explain_pool",
    "n_bins",
    "per_bin",
    "n_negatives",
    "window_len",
    "split",
    "max_contexts",
    "seed",
    "device",
)
SCORING_KEYS = (
    "scorers",
    "batch_size",
    "mark_frac",
    "top_k_tokens",
    "explainer_max_tokens",
    "single_token_threshold",
    "seed",
)
LLM_KEYS = ("llm_n_latents", "llm_variants", "llm_layers")


def pick_params(cfg: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    missing = [k for k in keys if k not in cfg]
    if missing:
        raise ParameterError(
            f"the auto-interp config lacks parameter(s) {missing}; pass a resolved 04_autointerp Config "
            "(rsae_utils.params.resolve('04_autointerp', profile, overrides))"
        )
    return {k: cfg[k] for k in keys}


# --------------------------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------------------------
def _unit(path: Path, compute: Callable[[], dict], keep: Callable[[dict], bool] = lambda r: True) -> dict:
    """Read a finished unit, or compute it and write it atomically (only when ``keep(result)``)."""
    if path.exists():
        try:
            return read_json(path)
        except (OSError, ValueError):
            pass  # a damaged unit is recomputed
    result = compute()
    if keep(result):
        write_json(path, result, compact=True)
    return result


def _answered(unit: dict) -> bool:
    """False for a scoring unit none of whose answers could be parsed: it is not stored as a result, so a rerun
    (after the backend is fixed) asks again instead of replaying the failure."""
    rows = unit.get("rows") or []
    return not rows or not all(bool(r.get("unparsable")) for r in rows)


def check_unparsable(examples: pd.DataFrame, backends: Sequence[LLMBackend], max_share: float) -> None:
    """AnswersUnparsable when a backend's share of unparsable answers exceeds ``max_share``."""
    if examples.empty or "backend" not in examples:
        return
    for backend in backends:
        mine = examples[examples["backend"] == backend.name]
        if mine.empty:
            continue
        share = float(mine["unparsable"].astype(bool).mean())
        if share > max_share:
            raise AnswersUnparsable(
                f"backend {backend.name}: {share:.0%} of its {len(mine)} answers could not be parsed, more than "
                f"max_unparsable_share={max_share:g}; see tables/unparsable.csv. Check that the server returns "
                "token logprobs and that the model answers with a list of 0/1 (a larger or instruction-tuned "
                "model, or structured decoding)"
            )


@dataclass
class AutointerpResult:
    examples: pd.DataFrame
    latents: pd.DataFrame
    latent_stats: pd.DataFrame
    unparsable: pd.DataFrame
    records: dict[tuple[str, str, int], list[LatentRecord]] = field(default_factory=dict)
    explanations: dict[tuple[str, str, int, int, str], str] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    runtime_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)  # sampling, scoring, llm, backends


def validate_runs(runs: pd.DataFrame) -> None:
    missing = [c for c in RUN_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {missing}; needs {list(RUN_COLUMNS)}")
    if runs.empty:
        raise ValueError("runs table is empty: no SAEs to interpret (run notebook 03 first)")


def run_autointerp(
    cfg: Mapping[str, Any],
    runs: pd.DataFrame,
    backends: Sequence[LLMBackend] = (),
    out_dir: str | Path = "autointerp",
    decoders: Mapping[str, Decode] | Callable[[str], Decode] | None = None,
    loaders: tuple[Callable, Callable] | None = None,
    progress: bool = True,
    tables_dir: str | Path | None = None,
) -> AutointerpResult:
    """Run the token baseline on every SAE in ``runs`` and each LLM backend on a sample of latents.

    ``cfg``: the resolved 04_autointerp parameters (any mapping with every key the run reads).
    ``runs``: one row per SAE with columns model, variant, layer, sae_dir, cache_dir.
    ``decoders``: model name -> token decoder (default: ``rsae_utils.subject.models.load_tokenizer``).
    ``out_dir`` holds the records and the scored units (reused when their keys match); the tables go to
    ``tables_dir`` (default ``out_dir / "tables"``), so a run over part of another run's SAEs can reuse its work
    without replacing its tables.
    """
    t0 = time.time()
    validate_runs(runs)
    out_dir = Path(out_dir)
    sampling = pick_params(cfg, SAMPLING_KEYS)
    scoring = pick_params(cfg, SCORING_KEYS)
    llm = pick_params(cfg, LLM_KEYS)
    limits = pick_params(cfg, ("max_unparsable_share",))
    for s in scoring["scorers"]:
        if s not in SCORERS:
            raise ValueError(f"unknown scorer {s!r}; allowed: {', '.join(SCORERS)}")
    if backends:
        llm_runs = runs[runs["variant"].isin(llm["llm_variants"])]
        if llm["llm_layers"] is not None:
            llm_runs = llm_runs[llm_runs["layer"].isin(llm["llm_layers"])]
        if llm_runs.empty:
            raise ValueError(
                f"no SAE matches llm_variants={llm['llm_variants']} and llm_layers={llm['llm_layers']}: the LLM "
                f"would score nothing; SAEs exist for variants {sorted(runs['variant'].unique())} and layers "
                f"{sorted(runs['layer'].unique())}"
            )
        for backend in backends:  # an endpoint that is down fails here, before any SAE is encoded ...
            # ... unless its response cache can answer (preflight warns then; an uncached request still fails).
            check = getattr(backend, "preflight", None) or getattr(backend, "check", None)
            if callable(check):
                check()
    strict = loaders is None  # the folders of notebook 03 are verified; in-memory test loaders name no folder
    load_sae, open_cache = loaders or (load_sae_folder, open_cache_folder)
    decode_of = _decoder_factory(decoders)
    # Units go stale when the scoring parameters or the code that builds prompts and scores change.
    scoring_key = stable_hash({"scoring": scoring, "code": code_hash(SCORING_CODE)})

    ex_rows: list[dict] = []
    stat_rows: list[dict] = []
    explanations: dict[tuple[str, str, int, int, str], str] = {}
    all_records: dict[tuple[str, str, int], list[LatentRecord]] = {}
    runs = runs.sort_values(["model", "variant", "layer"], kind="stable").reset_index(drop=True)
    iterator = _progress(runs.iterrows(), total=len(runs), desc="SAEs", enabled=progress)
    for _, run in iterator:
        model, variant, layer = str(run["model"]), str(run["variant"]), int(run["layer"])
        meta = {"model": model, "variant": variant, "layer": layer}
        recs, summary, rec_key = load_or_build_records(run, sampling, out_dir, load_sae, open_cache, strict)
        all_records[(model, variant, layer)] = recs
        decode = decode_of(model)
        for rec in recs:
            stat_rows.append(
                {
                    **meta,
                    **latent_stats_row(rec, decode, summary["ctx"], scoring["single_token_threshold"]),
                    "n_eligible": summary["n_eligible"],
                    "n_latents_total": summary["n_latents_total"],
                    "n_dead": summary.get("n_dead"),
                    "n_windows": summary.get("n_windows"),
                }
            )
        unit_dir = out_dir / "units" / rec_key / scoring_key
        # Token baseline: every sampled latent.
        for rec in recs:
            prof = bl.token_profile(rec, scoring["top_k_tokens"])
            explanations[(model, variant, layer, rec.latent, bl.BASELINE_NAME)] = bl.describe(prof, decode)
            for scorer in scoring["scorers"]:
                res = _unit(
                    unit_dir / bl.BASELINE_NAME / f"{rec.latent}.{scorer}.json",
                    lambda rec=rec, scorer=scorer, prof=prof, meta=meta: {
                        "rows": bl.score_baseline(
                            rec, scorer, seed=scoring["seed"], mark_frac=scoring["mark_frac"], meta=meta, profile=prof
                        )
                    },
                )
                ex_rows += res["rows"]
        # LLM backends: a seeded sample of latents, on the chosen variants and layers.
        if backends and variant in llm["llm_variants"] and (llm["llm_layers"] is None or layer in llm["llm_layers"]):
            chosen = llm_sample(recs, llm["llm_n_latents"], sampling["seed"])
            for backend in backends:
                bdir = unit_dir / slug(backend.name)
                for rec in _progress(
                    chosen, total=len(chosen), desc=f"{variant} L{layer} {backend.name}", enabled=progress
                ):
                    exp = _unit(
                        bdir / f"{rec.latent}.explanation.json",
                        lambda rec=rec, backend=backend, decode=decode: dict(
                            zip(
                                ("explanation", "raw"),
                                explain(rec, backend, decode, scoring["mark_frac"], scoring["explainer_max_tokens"]),
                                strict=True,
                            )
                        ),
                    )
                    explanations[(model, variant, layer, rec.latent, backend.name)] = exp["explanation"]
                    for scorer in scoring["scorers"]:
                        res = _unit(
                            bdir / f"{rec.latent}.{scorer}.json",
                            lambda rec=rec, scorer=scorer, backend=backend, exp=exp, decode=decode, meta=meta: {
                                "rows": score_with_backend(
                                    rec,
                                    exp["explanation"],
                                    backend,
                                    scorer,
                                    decode,
                                    batch_size=scoring["batch_size"],
                                    seed=scoring["seed"],
                                    mark_frac=scoring["mark_frac"],
                                    meta=meta,
                                )
                            },
                            keep=_answered,
                        )
                        ex_rows += res["rows"]

    examples = pd.DataFrame(ex_rows)
    latent_stats = pd.DataFrame(stat_rows)
    latents = per_latent_table(examples, latent_stats, explanations)
    unparsable = unparsable_table(examples)
    tables_dir = Path(tables_dir) if tables_dir is not None else out_dir / "tables"
    table_params = {"sampling": sampling, "scoring": scoring, "llm": llm, "backends": [b.name for b in backends]}
    paths = {
        name: save_table(df, tables_dir / f"{name}.csv", table_params)
        for name, df in (
            ("examples", examples),
            ("latents", latents),
            ("latent_stats", latent_stats),
            ("unparsable", unparsable),
        )
    }
    check_unparsable(examples, backends, float(limits["max_unparsable_share"]))
    return AutointerpResult(
        examples=examples,
        latents=latents,
        latent_stats=latent_stats,
        unparsable=unparsable,
        records=all_records,
        explanations=explanations,
        paths=paths,
        runtime_s=time.time() - t0,
        params=table_params,
    )


def load_results(out_dir: str | Path) -> AutointerpResult:
    """The tables and records a finished :func:`run_autointerp` left in ``out_dir`` (what notebook 05 reads)."""
    out_dir = Path(out_dir)
    tables = {
        n: load_table(out_dir / "tables" / f"{n}.csv") for n in ("examples", "latents", "latent_stats", "unparsable")
    }
    records: dict[tuple[str, str, int], list[LatentRecord]] = {}
    for f in sorted((out_dir / "records").glob("*/records.json")):
        data = read_json(f)
        s = data["summary"]
        key = (str(s["model"]), str(s["variant"]), int(s["layer"]))
        ls = tables["latent_stats"]
        if ((ls.model == key[0]) & (ls.variant == key[1]) & (ls.layer == key[2])).any():
            records[key] = [LatentRecord.from_dict(d) for d in data["records"]]
    return AutointerpResult(
        examples=tables["examples"],
        latents=tables["latents"],
        latent_stats=tables["latent_stats"],
        unparsable=tables["unparsable"],
        records=records,
        paths={n: out_dir / "tables" / f"{n}.csv" for n in tables},
        params=read_json(out_dir / "tables" / "latents.csv.manifest.json")["params"],
    )


def make_backends(cfg: Mapping[str, Any]) -> list[LLMBackend]:
    """The LLM backends ``cfg["llm_backends"]`` names ('local', 'openai'); validated, nothing loaded yet."""
    out = []
    for spec in cfg.get("llm_backends", []):
        if spec == "openai":
            out.append(
                make_backend(
                    "openai",
                    base_url=cfg["endpoint_url"],
                    model=cfg["endpoint_model"],
                    timeout=float(cfg.get("llm_timeout_s", 120.0)),
                    max_retries=int(cfg.get("llm_max_retries", 4)),
                    structured=cfg.get("endpoint_structured"),
                )
            )
        else:
            out.append(make_backend(spec))
    return out


def llm_sample(recs: Sequence[LatentRecord], n: int, seed: int) -> list[LatentRecord]:
    """``n`` records drawn at random (seeded); the same latents for every backend."""
    if n >= len(recs):
        return list(recs)
    idx = np.sort(np.random.default_rng([seed, 7]).choice(len(recs), size=n, replace=False))
    return [recs[i] for i in idx]


def token_decoder(model: str) -> Decode:
    """The token decoder of ``model`` (its tokenizer, loaded without the weights)."""
    return TokenDecoder(load_tokenizer(model))


# --------------------------------------------------------------------------------------------------------------
def _decoder_factory(decoders: Mapping[str, Decode] | Callable[[str], Decode] | None) -> Callable[[str], Decode]:
    memo: dict[str, Decode] = {}

    def get(model: str) -> Decode:
        if model not in memo:
            if decoders is None:
                memo[model] = token_decoder(model)
            elif isinstance(decoders, Mapping):
                memo[model] = decoders[model]
            else:
                memo[model] = decoders(model)
        return memo[model]

    return get


def _progress(it: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return it
    return tqdm(it, total=total, desc=desc, leave=False, mininterval=2.0)
