"""Helpers shared by the auto-interp tests: a token decoder and a deterministic stand-in LLM backend."""

import re


def decode(ids):
    return [f" t{int(i)}" for i in ids]


class ScriptedBackend:
    """Deterministic stand-in for an LLM: answers 1 for examples that contain the explanation's token.

    ``broken`` batches (by call index) answer None everywhere, a list of the wrong length, or junk values.
    """

    name = "test:scripted"

    def __init__(self, broken=None):
        self.broken = dict(broken or {})
        self.calls = []

    def generate(self, messages, max_tokens=100):
        self.calls.append(("generate", messages))
        marked = re.findall(r"<<(.*?)>>", messages[-1]["content"])
        top = max(set(marked), key=marked.count) if marked else "?"
        return f"Sure.\nExplanation: {top.strip()}"

    def answer_probabilities(self, messages, n_answers):
        i = len([c for c in self.calls if c[0] == "answer"])
        self.calls.append(("answer", messages))
        if i in self.broken:
            return self.broken[i]
        text = messages[-1]["content"]
        target = re.search(r"Explanation: (.*)", text).group(1).strip()
        examples = re.findall(r"^Example \d+: (.*)$", text, flags=re.M)
        assert len(examples) == n_answers
        if "marked tokens" in text:  # fuzzing: are all marked spans the target token?
            return [float(all(s.strip() == target for s in re.findall(r"<<(.*?)>>", e))) for e in examples]
        return [0.9 if re.search(rf"\b{re.escape(target)}\b", e) else 0.1 for e in examples]
