"""Making activations: one model pass per variant, every requested layer; cached in verified shards or streamed.

``harvest`` writes an activation cache (format and reading: :mod:`rsae_utils.sae.cache`). The forward pass stops
after the deepest requested layer, so a cache of layers 0..14 of a 30-layer model costs half a forward. An
interrupted harvest keeps its finished shards; rerunning it with the same parameters checks each recorded shard
(size and sha256) and recomputes only the missing or damaged ones. Each shard's forward runs under its own seed, so
a resumed cache is bit-identical to an uninterrupted one, even for the control variant whose embeddings are fresh
noise on every forward. ``stream_activations`` makes the same activations on the fly for paper-scale training,
where a cached training split would not fit on a disk.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save
from safetensors.torch import save_file as st_save_file

from rsae_utils.errors import CacheError, ParameterError
from rsae_utils.repro import provenance, stable_hash
from rsae_utils.sae.cache import (
    DEFAULT_SHARD_WINDOWS,
    DTYPES,
    FORMAT,
    FP16_MAX,
    MANIFEST,
    SPLITS,
    TL_FORWARD,
    TOKENS_FILE,
    ActivationCache,
    cache_key,
    hook_name,
    shard_name,
    shard_ok,
    token_mask,
    tokens_digest,
)
from rsae_utils.sae.fastfwd import HARVEST_DTYPES, lean_layers, lean_ok, pack_blocks
from rsae_utils.store import apply_umask, atomic_write_bytes, file_record, note_artifact, read_json, write_json


def _shard_seed(seed: int, split: str, index: int) -> int:
    return int(stable_hash({"seed": seed, "split": split, "shard": index}, length=12), 16) % (2**62)


@torch.no_grad()
def run_layers(
    model: Any,
    tokens: torch.Tensor,
    layers: Sequence[int],
    batch_size: int,
    harvest_dtype: str = "float32",
    packed: list[dict[str, Any]] | None = None,
) -> dict[int, torch.Tensor]:
    """Residual stream after each of ``layers`` for ``tokens`` (n, ctx), in one forward stopped after the deepest.

    A model ``lean_ok`` accepts (Llama-style, CPU) runs the lean forward of :mod:`rsae_utils.sae.fastfwd`
    (~1.2x faster in float32; ``harvest_dtype="bfloat16"`` runs its matrix products in bfloat16); any other runs
    transformer-lens's forward with hooks, as it always has (``harvest_forward`` says which)."""
    if harvest_forward(model, harvest_dtype) != TL_FORWARD:
        return lean_layers(model, tokens, layers, batch_size, harvest_dtype, packed)
    return hooked_layers(model, tokens, layers, batch_size)


@torch.no_grad()
def hooked_layers(model: Any, tokens: torch.Tensor, layers: Sequence[int], batch_size: int) -> dict[int, torch.Tensor]:
    """``run_layers`` through transformer-lens's ``run_with_hooks`` (any model, any device; the reference)."""
    names = {hook_name(layer): layer for layer in layers}
    stop = max(layers) + 1
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}

    def grab(act: torch.Tensor, hook: Any) -> None:
        out[names[hook.name]].append(act.detach().to("cpu", torch.float32))

    device = next(model.parameters()).device
    hooks = [(name, grab) for name in names]
    for start in range(0, tokens.shape[0], batch_size):
        batch = tokens[start : start + batch_size].to(device)
        model.run_with_hooks(batch, fwd_hooks=hooks, stop_at_layer=stop)
    return {layer: torch.cat(parts) for layer, parts in out.items()}


def harvest_forward(model: Any, harvest_dtype: str = "float32") -> str:
    """Which forward ``run_layers`` uses for ``model``: ``"lean-float32"``/``"lean-bfloat16"`` (fastfwd) or
    ``"transformer-lens"``; it enters the cache key. bfloat16 exists only on the lean path (ParameterError)."""
    if harvest_dtype not in HARVEST_DTYPES:
        raise ParameterError(
            f"parameter 'harvest_dtype' must be one of {', '.join(map(repr, HARVEST_DTYPES))}; got {harvest_dtype!r}"
        )
    if lean_ok(model):
        return f"lean-{harvest_dtype}"
    if harvest_dtype != "float32":
        raise ParameterError(
            "parameter 'harvest_dtype' must be 'float32' for this model: bfloat16 harvests need a Llama-style "
            "model on the CPU (rsae_utils.sae.fastfwd.lean_ok)"
        )
    return TL_FORWARD


def planned_forward(model_name: str, device: str, harvest_dtype: str = "float32") -> str:
    """``harvest_forward``'s answer guessed from a config, before loading the model (a wrong guess only costs a
    model load: ``harvest`` recomputes the key from the model itself)."""
    llama = str(model_name).strip().lower() in ("smollm2-135m", "tiny-random")
    return f"lean-{harvest_dtype}" if llama and str(device).startswith("cpu") else TL_FORWARD


def stream_activations(
    model: Any,
    tokens: torch.Tensor,
    layers: Sequence[int],
    batch_size: int,
    *,
    harvest_batch: int = 8,
    seed: int = 0,
    exclude_tokens: Sequence[int] = (),
    buffer_tokens: int | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless iterator of ``{hook_name(L): (batch_size, d_model)}`` float32 batches made on the fly, never stored.

    The paper trains on 100M tokens per SAE: a cache of that is ~100 GB per layer of Pythia-70m, so at that scale
    the activations are streamed instead. Each epoch visits the windows in a seeded random order, ``harvest_batch``
    windows per forward (stopped after the deepest layer); positions holding ``exclude_tokens`` are dropped; rows
    are mixed in a buffer of ``buffer_tokens`` (default 16 batches), which yields a random half and keeps the
    other half, like sae-lens's mixing buffer. Every layer's batch holds the same token positions. Tensors stay on
    the model's device. Same seed, same batches; the control variant's embedding noise is reseeded per forward.
    """
    layers = sorted({int(x) for x in layers})
    if not layers:
        raise ParameterError("parameter 'layers' must name at least one layer")
    tokens = torch.as_tensor(tokens).long()
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise ParameterError(
            f"parameter 'tokens' must be a non-empty (n_windows, ctx) tensor; got shape {tuple(tokens.shape)}"
        )
    keep_all = token_mask(tokens, exclude_tokens)
    if not bool(keep_all.any()):
        raise ParameterError("parameter 'exclude_tokens' leaves no token positions to train on")
    buffer_tokens = int(buffer_tokens or 16 * batch_size)
    if buffer_tokens < 2 * batch_size:
        raise ParameterError(
            f"parameter 'buffer_tokens' must be >= 2 x batch_size ({2 * batch_size}); got {buffer_tokens}"
        )
    names = [hook_name(layer) for layer in layers]
    stop = layers[-1] + 1
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    noise = getattr(model, "rsae_embedding_noise", None)  # the control variant's own noise generator
    grabbed: dict[str, torch.Tensor] = {}

    def grab(act: torch.Tensor, hook: Any) -> None:
        grabbed[hook.name] = act.detach()

    buf: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    n_buf, epoch = 0, 0
    while True:
        order = torch.randperm(tokens.shape[0], generator=gen)
        for start in range(0, len(order), harvest_batch):
            idx = order[start : start + harvest_batch]
            if noise is not None:
                noise.generator.manual_seed(_shard_seed(seed, f"stream-{epoch}", start))
            with torch.no_grad():
                model.run_with_hooks(tokens[idx].to(device), fwd_hooks=[(n, grab) for n in names], stop_at_layer=stop)
            keep = keep_all[idx].reshape(-1).to(device)
            for n in names:
                buf[n].append(grabbed[n].reshape(-1, grabbed[n].shape[-1])[keep].float())
            n_buf += int(keep.sum())
            if n_buf < buffer_tokens:
                continue
            rows = {n: torch.cat(buf[n]) for n in names}
            perm = torch.randperm(n_buf, generator=gen).to(device)
            n_out = (n_buf // 2) // batch_size * batch_size
            for b in range(0, n_out, batch_size):
                sel = perm[b : b + batch_size]
                yield {n: rows[n][sel] for n in names}
            rest = perm[n_out:]
            buf = {n: [rows[n][rest]] for n in names}
            n_buf = len(rest)
        epoch += 1


def _write_shard(root: Path, name: str, tensors: dict[str, torch.Tensor], record: dict[str, Any]) -> dict[str, Any]:
    """Write one shard atomically (temporary file, then rename) and return its manifest record with size + sha256."""
    tmp = root / f".{name}.tmp"
    st_save_file(tensors, tmp)
    apply_umask(tmp)  # safetensors writes 0600 whatever the umask
    tmp.replace(root / name)
    return {**record, **file_record(root / name)}


def _checked_inputs(
    model: Any, tokens_by_split: Mapping[str, torch.Tensor], layers: Sequence[int], dtype: str
) -> tuple[list[int], dict[str, torch.Tensor], int]:
    """(sorted layers, token windows by split in SPLITS order as contiguous int64 CPU tensors, ctx) after checking
    the dtype, the layers against the model and that every split is (n_windows, ctx) of one ctx."""
    if dtype not in DTYPES:
        raise ParameterError(f"parameter 'dtype' must be one of {', '.join(map(repr, DTYPES))}; got {dtype!r}")
    layers = sorted({int(x) for x in layers})
    if not layers:
        raise ParameterError("parameter 'layers' must name at least one layer")
    n_layers = int(getattr(getattr(model, "cfg", None), "n_layers", max(layers) + 1))
    if layers[0] < 0 or layers[-1] >= n_layers:
        raise ParameterError(f"parameter 'layers' must be within 0..{n_layers - 1} for this model; got {layers}")
    splits = [s for s in SPLITS if s in tokens_by_split] + [s for s in tokens_by_split if s not in SPLITS]
    tokens_by_split = {s: torch.as_tensor(tokens_by_split[s]).long().cpu().contiguous() for s in splits}
    ctxs = {t.shape[1] for t in tokens_by_split.values() if t.ndim == 2}
    if len(ctxs) != 1 or any(t.ndim != 2 for t in tokens_by_split.values()):
        raise ParameterError("tokens_by_split must map split names to (n_windows, ctx) tensors of one ctx")
    return layers, tokens_by_split, ctxs.pop()


def _previous_manifest(root: Path, key: str) -> dict[str, Any]:
    """The manifest already in ``root`` when it is one we wrote with this ``key``; {} otherwise (warning when one
    is there but unreadable or made with other parameters: the cache is rebuilt)."""
    if not (root / MANIFEST).exists():
        return {}
    try:
        old = read_json(root / MANIFEST)
    except (OSError, json.JSONDecodeError) as err:
        warnings.warn(f"{root / MANIFEST}: unreadable cache manifest ({err}); rebuilding the cache", stacklevel=3)
        return {}
    shards = old.get("shards") if isinstance(old, dict) else None
    if old != {} and not (isinstance(shards, list) and all(isinstance(x, dict) and "file" in x for x in shards)):
        # null, {"files": 5}, ...: not a manifest harvest wrote, whatever it holds; start over, and say so
        warnings.warn(
            f"{root / MANIFEST}: unreadable cache manifest (not an activation cache manifest: "
            f"{str(old)[:60]}); rebuilding the cache",
            stacklevel=3,
        )
        return {}
    if old.get("key") != key:
        if old:
            warnings.warn(f"{root}: cache made with other parameters; rebuilding it", stacklevel=3)
        return {}
    return old


def _new_manifest(
    root: Path,
    key: str,
    meta: Mapping[str, Any],
    layers: list[int],
    tokens_by_split: dict[str, torch.Tensor],
    settings: dict[str, Any],
    old: Mapping[str, Any],
) -> dict[str, Any]:
    """The manifest of a cache about to be (re)harvested, no shard recorded yet; writes the token windows' file
    unless the one there is the previous manifest's. ``settings``: ctx, d_model, dtype, shard_windows, forward,
    harvest_dtype. The harvest time so far is carried over from ``old``."""
    tokens_path = root / TOKENS_FILE
    if not tokens_path.exists() or old.get("tokens_file", {}).get("sha256") != file_record(tokens_path)["sha256"]:
        atomic_write_bytes(tokens_path, st_save(dict(tokens_by_split)))
    return {
        "format": FORMAT,
        "key": key,
        "complete": False,
        **{k: v for k, v in meta.items() if k not in ("layers",)},
        "model": meta.get("model"),
        "variant": meta.get("variant"),
        "seed": int(meta.get("seed", 0) or 0),
        "corpus_sha256": meta.get("corpus_sha256"),
        "activation_source": (
            "forward with fresh N(0,1) noise in place of every token embedding (control variant)"
            if meta.get("variant") == "control"
            else "ordinary forward"
        ),
        "layers": layers,
        "hook_names": [hook_name(x) for x in layers],
        "stop_at_layer": layers[-1] + 1,
        "forward": settings["forward"],
        "harvest_dtype": settings["harvest_dtype"],
        "ctx": settings["ctx"],
        "d_model": settings["d_model"],
        "dtype": settings["dtype"],
        "shard_windows": settings["shard_windows"],
        "n_windows": {s: int(t.shape[0]) for s, t in tokens_by_split.items()},
        "n_tokens": {s: int(t.numel()) for s, t in tokens_by_split.items()},
        "tokens_sha256": {s: tokens_digest(t) for s, t in tokens_by_split.items()},
        "tokens_file": {"file": TOKENS_FILE, **file_record(tokens_path)},
        "shards": [],
        "provenance": provenance(),
        "harvest_seconds": float(old.get("harvest_seconds", 0.0)),
    }


@torch.no_grad()
def _shard_tensors(
    model: Any, tokens: torch.Tensor, layers: list[int], batch_size: int, shard_seed: int, how: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """One shard's activations {hook name: (windows, ctx, d_model)} in the stored dtype, its forward seeded by
    ``shard_seed`` (``how``: dtype, harvest_dtype, packed). CacheError when float16 would overflow."""
    noise = getattr(model, "rsae_embedding_noise", None)  # the control variant's own noise generator
    if noise is not None:
        noise.generator.manual_seed(shard_seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(shard_seed)
        acts = run_layers(model, tokens, layers, batch_size, how["harvest_dtype"], how["packed"])
    t_dtype = DTYPES[how["dtype"]]
    tensors = {}
    for layer, a in acts.items():
        if t_dtype == torch.float16 and a.abs().max().item() > FP16_MAX:
            raise CacheError(f"layer {layer} has values beyond float16 range; use dtype='float32'")
        tensors[hook_name(layer)] = a.to(t_dtype).contiguous()
    return tensors


def _harvest_shards(
    model: Any,
    tokens_by_split: dict[str, torch.Tensor],
    layers: list[int],
    root: Path,
    manifest: dict[str, Any],
    done: dict[str, dict[str, Any]],
    how: dict[str, Any],
) -> bool:
    """Compute (or keep, from ``done``) every shard in order, recording each in ``manifest`` (written after each)
    once it is on disk; False when ``how["max_shards"]`` new shards were made first. A shard is written and hashed
    on a background thread while the next one is computed."""
    n_new, shard_windows = 0, manifest["shard_windows"]
    writer = ThreadPoolExecutor(max_workers=1)  # overlaps writing + hashing a shard with the next forward
    pending: list[Any] = []  # at most one (future, message) whose shard is not yet in the manifest
    t_mark = time.perf_counter()

    def settle() -> None:  # record the shard being written (manifest order = shard order, which readers rely on)
        nonlocal t_mark
        for fut, message in pending:
            manifest["shards"].append(fut.result())
            now = time.perf_counter()
            manifest["harvest_seconds"] += now - t_mark
            t_mark = now
            write_json(root / MANIFEST, manifest)
            if how["progress"]:
                print(message, flush=True)
        pending.clear()

    try:
        for split, toks in tokens_by_split.items():
            for index, start in enumerate(range(0, toks.shape[0], shard_windows)):
                end = min(start + shard_windows, toks.shape[0])
                name = shard_name(split, index)
                if name in done and done[name]["windows"] == [start, end]:
                    settle()
                    manifest["shards"].append(done[name])
                    continue
                if how["max_shards"] is not None and n_new >= how["max_shards"]:
                    settle()
                    write_json(root / MANIFEST, manifest)
                    return False
                seed = _shard_seed(manifest["seed"], split, index)
                tensors = _shard_tensors(model, toks[start:end], layers, how["batch_size"], seed, how)
                settle()
                record = {"split": split, "index": index, "file": name, "windows": [start, end]}
                message = f"  {manifest.get('variant')}: {split} shard {index} ({end}/{toks.shape[0]} windows)"
                pending.append((writer.submit(_write_shard, root, name, tensors, record), message))
                n_new += 1
        settle()
    finally:
        writer.shutdown(wait=True)  # an unrecorded shard left on disk is simply recomputed on resume
    return True


def harvest(
    model: Any,
    tokens_by_split: Mapping[str, torch.Tensor],
    layers: Sequence[int],
    out_dir: str | Path,
    meta: Mapping[str, Any],
    batch_size: int = 8,
    *,
    shard_windows: int = DEFAULT_SHARD_WINDOWS,
    dtype: str = "float32",
    max_shards: int | None = None,
    progress: bool = False,
    harvest_dtype: str = "float32",
) -> ActivationCache:
    """Run ``model`` once over every split's windows and write each requested layer's residual stream to disk.

    ``meta`` describes the run and is recorded: ``model``, ``variant``, ``seed`` and ``corpus_sha256`` form part of
    the cache key (with the exact tokens, layers, dtype and shard size); anything else (e.g. the variant record,
    corpus source) is stored as is. A folder holding a finished cache with the same key is returned untouched; a
    partial or damaged one is completed. ``max_shards`` stops after that many newly computed shards (used to
    simulate an interruption); the manifest then says ``complete: false``. ``harvest_dtype`` is the forward's
    compute dtype (``run_layers``); the forward used enters the key. A shard is written and hashed on a
    background thread while the next one is computed; it enters the manifest only once it is on disk.
    """
    layers, tokens_by_split, ctx = _checked_inputs(model, tokens_by_split, layers, dtype)
    forward = harvest_forward(model, harvest_dtype)
    key = cache_key(meta, layers, tokens_by_split, dtype, shard_windows, forward)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)

    old = _previous_manifest(root, key)
    done = {s["file"]: s for s in old.get("shards", []) if shard_ok(root, s, check_hash=True)}
    tokens_rec = old.get("tokens_file")
    tokens_ok = isinstance(tokens_rec, dict) and "file" in tokens_rec and shard_ok(root, tokens_rec, check_hash=True)
    if old and old.get("complete") and len(done) == len(old.get("shards", [])) and tokens_ok:
        note_artifact(root)
        return ActivationCache(root, old)

    settings = {
        "ctx": ctx,
        "d_model": int(model.cfg.d_model),
        "dtype": dtype,
        "shard_windows": shard_windows,
        "forward": forward,
        "harvest_dtype": harvest_dtype,
    }
    manifest = _new_manifest(root, key, meta, layers, tokens_by_split, settings, old)
    how = {
        "batch_size": batch_size,
        "dtype": dtype,
        "harvest_dtype": harvest_dtype,
        "packed": pack_blocks(model, layers[-1] + 1, harvest_dtype) if forward != TL_FORWARD else None,
        "max_shards": max_shards,
        "progress": progress,
    }
    if not _harvest_shards(model, tokens_by_split, layers, root, manifest, done, how):
        return ActivationCache(root, manifest)
    manifest["complete"] = True
    manifest["harvest_tokens_per_s"] = round(
        sum(manifest["n_tokens"].values()) / max(manifest["harvest_seconds"], 1e-9), 1
    )
    write_json(root / MANIFEST, manifest)
    note_artifact(root)
    return ActivationCache(root, manifest)
