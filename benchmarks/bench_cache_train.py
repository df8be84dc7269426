"""Benchmark: activation harvest and SAE training from the cache, against their baselines, in one process.

1. Harvest: tokens/s of ``cache.harvest`` (forward stopped after the deepest layer, hooks, shards written and
   hashed) against a plain forward of the same model to the same depth on the same windows.
2. Training: tokens/s of ``train.train_sae`` reading the cache, against sae-lens's own
   ``LanguageModelSAETrainingRunner`` on the same model, hook, SAE size, k and token count (it runs the model
   to the hook for every training batch). The ratio cache/runner is expected > 1; the harvest cost is reported
   separately and, amortised, per SAE (one harvest serves every layer of a variant).

    python benchmarks/bench_cache_train.py                      # SmolLM2-135M, layers 0,4,9,14, SAE at layer 9
    python benchmarks/bench_cache_train.py --model tiny-random --layers 0,1,3 --layer 3 --tokens 8192
    python benchmarks/bench_cache_train.py --quick              # tiny-random, 2,048 tokens (seconds)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from _quick import quick_corpus, write_json


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layers", default="0,4,9,14", help="layers harvested in one pass")
    ap.add_argument("--layer", type=int, default=9, help="layer of the SAE compared with the sae-lens runner")
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=16384, help="SAE training tokens (both trainers)")
    ap.add_argument("--harvest-windows", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8, help="windows per forward")
    ap.add_argument("--expansion", type=int, default=4)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--train-batch", type=int, default=512)
    ap.add_argument("--corpus", default="site-packages", help="corpus source (subject.corpus: site-packages, dir:...)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="tiny-random, layers 0,1,3 (SAE at 3), ctx 32, 2,048 "
        "tokens, a small corpus of this package's sources (a smoke run in seconds)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    tmp_corpus = tempfile.TemporaryDirectory() if args.quick else None
    if tmp_corpus is not None:
        args.model, args.layers, args.layer, args.ctx = "tiny-random", "0,1,3", 3, 32
        args.tokens, args.harvest_windows, args.expansion, args.k, args.train_batch = 2048, 16, 2, 8, 256
        args.corpus = quick_corpus(Path(tmp_corpus.name))

    from rsae_utils.sae.cache import hook_name, open_cache
    from rsae_utils.sae.harvest import harvest
    from rsae_utils.sae.train import SAESpec, load_record, train_sae
    from rsae_utils.subject.corpus import load_corpus
    from rsae_utils.subject.models import load_model
    from rsae_utils.subject.windows import tokenize_windows

    layers = [int(x) for x in args.layers.split(",")]
    loaded = load_model(args.model)
    model = loaded.model
    corpus = load_corpus(args.corpus)
    n_train = max(args.harvest_windows, -(-args.tokens // args.ctx))
    windows = tokenize_windows(corpus, loaded.tokenizer, args.ctx, n_train, 1, 0)
    tokens = windows["train"]
    out: dict = {
        "quick": args.quick,
        "model": args.model,
        "layers": layers,
        "sae_layer": args.layer,
        "ctx": args.ctx,
        "threads": torch.get_num_threads(),
    }

    # --- 1. harvest vs plain forward to the same depth ---
    sample = tokens[: args.harvest_windows]
    n_tok = sample.numel()
    with torch.no_grad():
        model(sample[: args.batch], stop_at_layer=max(layers) + 1)  # warm-up
        t0 = time.perf_counter()
        for s in range(0, sample.shape[0], args.batch):
            model(sample[s : s + args.batch], stop_at_layer=max(layers) + 1)
        plain = n_tok / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"model": args.model, "variant": "trained", "seed": 0, "corpus_sha256": corpus.sha256}
        t0 = time.perf_counter()
        harvest(model, {"train": sample}, layers, Path(tmp) / "h", meta, batch_size=args.batch)
        harv = n_tok / (time.perf_counter() - t0)
    out["harvest"] = {
        "tokens": n_tok,
        "plain_forward_tok_s": round(plain, 1),
        "harvest_tok_s": round(harv, 1),
        "harvest_over_plain": round(harv / plain, 3),
    }
    print(
        f"harvest {layers} ({n_tok} tokens): plain forward to layer {max(layers)} {plain:.0f} tok/s, "
        f"harvest {harv:.0f} tok/s (x{harv / plain:.2f}: hooks + writing + hashing)",
        flush=True,
    )

    # --- 2. SAE training: from the cache vs sae-lens's LanguageModelSAETrainingRunner ---
    spec = SAESpec(
        expansion=args.expansion, k=args.k, n_tokens=args.tokens, batch_size=args.train_batch, lr=2e-3, seed=0
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        meta = {"model": args.model, "variant": "trained", "seed": 0, "corpus_sha256": corpus.sha256}
        t0 = time.perf_counter()
        cache = harvest(model, {"train": tokens}, layers, tmp / "cache", meta, batch_size=args.batch)
        harvest_s = time.perf_counter() - t0
        cache = open_cache(tmp / "cache")
        t0 = time.perf_counter()
        rec = load_record(train_sae(cache, args.layer, spec, tmp / "sae"))
        ours_s = time.perf_counter() - t0

        runner_s = _run_sae_lens_runner(model, tokens, args, hook_name(args.layer), loaded.d_model)

    ours = args.tokens / ours_s
    runner = args.tokens / runner_s
    amortised = args.tokens / (ours_s + harvest_s * min(1.0, args.tokens / tokens.numel()) / len(layers))
    out["training"] = {
        "tokens": args.tokens,
        "d_sae": spec.d_sae(loaded.d_model),
        "k": args.k,
        "cache_train_tok_s": round(ours, 1),
        "cache_train_s": round(ours_s, 2),
        "sae_lens_runner_tok_s": round(runner, 1),
        "sae_lens_runner_s": round(runner_s, 2),
        "ratio_cache_over_runner": round(ours / runner, 2),
        "harvest_s_all_layers": round(harvest_s, 2),
        "cache_tok_s_incl_amortised_harvest": round(amortised, 1),
        "ratio_incl_amortised_harvest": round(amortised / runner, 2),
        "final_train_fvu": (rec.get("final") or {}).get("fvu"),
    }
    print(
        f"SAE training at {hook_name(args.layer)} (d_sae {spec.d_sae(loaded.d_model)}, k {args.k}, "
        f"{args.tokens} tokens): from cache {ours:.0f} tok/s, sae-lens runner {runner:.0f} tok/s "
        f"-> ratio {ours / runner:.2f}; with the harvest amortised over {len(layers)} layers "
        f"{amortised:.0f} tok/s -> ratio {amortised / runner:.2f}",
        flush=True,
    )
    print(json.dumps(out, indent=2))
    if args.json:
        write_json(args.json, out)
    if tmp_corpus is not None:
        tmp_corpus.cleanup()
    return out


def _run_sae_lens_runner(model, tokens: torch.Tensor, args, hook: str, d_model: int) -> float:
    """Seconds for sae-lens's LanguageModelSAETrainingRunner to train the same SAE on the same windows."""
    import datasets
    from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner
    from sae_lens.config import LoggingConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAEConfig

    ds = datasets.Dataset.from_dict({"input_ids": tokens.tolist()})
    # its mixing buffer holds n_batches_in_buffer * context_size tokens and must fit a training batch (STACK.md)
    n_buf = max(2, 2 * -(-args.train_batch // args.ctx))
    cfg = LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(
            d_in=d_model, d_sae=args.expansion * d_model, k=args.k, normalize_activations="expected_average_only_in"
        ),
        model_name=args.model,
        hook_name=hook,
        dataset_path="",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=args.ctx,
        prepend_bos=False,
        training_tokens=args.tokens,
        train_batch_size_tokens=args.train_batch,
        store_batch_size_prompts=args.batch,
        n_batches_in_buffer=n_buf,
        lr=2e-3,
        lr_end=2e-3,
        device="cpu",
        seed=0,
        logger=LoggingConfig(log_to_wandb=False),
        checkpoint_path=None,
        output_path=None,
        verbose=False,
        n_batches_for_norm_estimate=10,
        dead_feature_window=max(5, args.tokens // 8 // args.train_batch),
    )
    t0 = time.perf_counter()
    LanguageModelSAETrainingRunner(cfg, override_dataset=ds, override_model=model).run()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
