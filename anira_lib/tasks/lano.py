"""LANO: language modelling on sentences of the PCFG cfg3b (paper §5.2; docs/tasks.md).

A training window is `window` tokens (512 in Table 5) of sentences, each followed by EOS, packed
back to back and starting at a sentence boundary (a window that starts mid-sentence has no prefix
probability); the last sentence is cut at the window's end. LM loss on every token. Token ids:
terminals are their own ids (1, 2, 3), EOS 4, PAD 0 (the reference's ids; no BOS).
The checker recognises every complete sentence of a window with the grammar.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .pcfg import PCFGSampler, load_pcfg
from .base import Example, TaskSampler

PAD, EOS = 0, 4


@dataclass(frozen=True)
class LanoTask(TaskSampler):
    """LANO sampler and checker. grammar: 'cfg3b' or a grammar file; window: tokens per example."""

    grammar: str = "cfg3b"
    window: int = 512
    seed: int = 0

    name = "lano"
    knob_label = "window"

    def __post_init__(self):
        if self.window < 2:
            raise ValueError(f"LANO window must be >= 2 tokens, got {self.window}.")
        sampler = PCFGSampler(load_pcfg(self.grammar))
        if any(t in (PAD, EOS) for t in sampler.terminals):
            raise ValueError(f"grammar terminals {sampler.terminals} collide with PAD={PAD}/EOS={EOS}.")
        object.__setattr__(self, "sampler", sampler)

    eos_id = EOS  # a class attribute, not a dataclass field

    @property
    def vocab_size(self) -> int:
        return max(self.sampler.terminals + [EOS]) + 1

    @property
    def pad_id(self) -> int:
        return PAD

    @property
    def max_len(self) -> int:
        return self.window

    def decode(self, tokens):
        return ["<eos>" if t == EOS else "<pad>" if t == PAD else str(t) for t in tokens]

    def sample(self, rng: random.Random, knob=None) -> Example:
        tokens, starts = [], []
        while len(tokens) < self.window:
            starts.append(len(tokens))
            tokens += self.sampler.sample(rng)
            tokens.append(EOS)
        tokens = tokens[: self.window]
        return Example(tokens, [False] + [True] * (len(tokens) - 1), 0, {"sentence_starts": starts})



    def sentences(self, tokens: list[int]) -> list[list[int]]:
        """The complete (EOS-terminated) sentences of a window."""
        out, cur = [], []
        for t in tokens:
            if t == EOS:
                out.append(cur)
                cur = []
            else:
                cur.append(t)
        return out

    def check(self, ex: Example, predicted: list[int] | None = None) -> bool:
        """Every complete sentence of the window is derivable from the grammar's start symbol.
        `predicted` holds the supervised positions' tokens: every token after the first."""
        tokens = ex.tokens if predicted is None else [ex.tokens[0], *predicted]
        return all(self.sampler.recognizes(s) for s in self.sentences(tokens))
