"""Benchmark the local LLM judge's batched scoring against asking one prompt at a time.

    .venv/bin/python benchmarks/bench_llm_judge.py              # 30 detection prompts of 5 windows (~1-2 min)
    .venv/bin/python benchmarks/bench_llm_judge.py --prompts 60
    .venv/bin/python benchmarks/bench_llm_judge.py --quick      # 2 prompts of 2 windows (seconds, after the load)

One explanation's scoring prompts, as notebook 04 asks them (detection, 5 windows of 32 tokens each; the windows
are cut from this repository's README, so the run is offline): every prompt shares the head that holds the
system prompt and the explanation. ``one at a time`` is ``answer_probabilities`` per prompt (the shared head's
KV cache reused, one short forward per answer slot); ``batched`` is ``answer_probabilities_many``, which puts the
prompts through the model together (padded and masked) and feeds every answer slot to all of them in one pass.
The script checks that both give the same probabilities (to 2e-5) and prints the time of each and the ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _quick import write_json

from rsae_utils.autointerp.llm.local import LocalChatBackend
from rsae_utils.autointerp.prompts import detection_messages


def windows(tok, n: int, length: int = 32, seed: int = 0) -> list[str]:
    ids = tok.encode((Path(__file__).resolve().parents[1] / "README.md").read_text(), add_special_tokens=False)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - length, n)
    return [tok.decode(ids[s : s + length]) for s in starts]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=30, help="scoring prompts of one explanation (notebook 04: 30)")
    ap.add_argument("--per-prompt", type=int, default=5, help="windows per prompt (notebook 04's batch_size)")
    ap.add_argument("--batch", type=int, default=32, help="prompts per forward of the batched path")
    ap.add_argument("--quick", action="store_true", help="2 prompts of 2 windows, 2 per forward (a smoke run)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.per_prompt, args.batch = 2, 2, 2
    judge = LocalChatBackend(batch=args.batch).load()
    texts = windows(judge._tok, args.prompts * args.per_prompt)
    many = [
        detection_messages("Python packaging and command-line options", texts[i : i + args.per_prompt])
        for i in range(0, len(texts), args.per_prompt)
    ]
    judge.answer_probabilities(many[0], args.per_prompt)  # warm-up: loads the model, computes the shared head
    t0 = time.perf_counter()
    single = [judge.answer_probabilities(m, args.per_prompt) for m in many]
    t_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = judge.answer_probabilities_many(many, args.per_prompt)
    t_batched = time.perf_counter() - t0
    diff = max(abs(a - b) for s, b_ in zip(single, batched) for a, b in zip(s, b_))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(many)} prompts x {args.per_prompt} "
        f"windows of 32 tokens, one shared head"
    )
    print(f"one at a time: {t_single:6.1f} s ({t_single / len(many):.2f} s per prompt)")
    print(f"batched:       {t_batched:6.1f} s ({t_batched / len(many):.2f} s per prompt, {args.batch} per forward)")
    print(f"speed-up: {t_single / t_batched:.2f}x; largest probability difference {diff:.1e}")
    if args.json:
        write_json(
            args.json,
            {
                "quick": args.quick,
                "prompts": len(many),
                "per_prompt": args.per_prompt,
                "batch": args.batch,
                "threads": torch.get_num_threads(),
                "single_s": t_single,
                "batched_s": t_batched,
                "speedup": t_single / t_batched,
                "max_abs_diff": diff,
            },
        )
    if diff > 2e-5:
        raise SystemExit(f"the batched answers differ from the single ones by {diff:.1e} (> 2e-5)")


if __name__ == "__main__":
    main()
