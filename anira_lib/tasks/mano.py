"""MANO: prefix modular arithmetic with knob L = number of operators (paper §5.1, docs/tasks.md).

Sequence (ANIRA default, 2ℓ+4 tokens): BOS <prefix expression> ANS answer.
With `length_tag=True` (reference option) a tag for ℓ follows BOS (2ℓ+5 tokens). With
`synonyms=True` (reference "knowledge augmentation") every special token is drawn per occurrence
from two synonymous ids. Supervision: the answer token only. With `end_token=True` an EOS follows
the answer and is supervised too, so a model learns to stop and `generate()` ends there (not in the
paper's format; off by default). `encode("+ 3 * 4 1")` builds a prompt: BOS expression ANS.

Tree with exactly ℓ operators: a node with budget b > 0 draws its operator uniformly, gives the
left child a budget uniform in 0..b-1 and the right child the rest; leaves are uniform in 0..m-1.
Division (optional) multiplies by the modular inverse; a divisor ≡ 0 is redrawn.
The checker (`evaluate_prefix`) evaluates by exact rational arithmetic and reduces mod m at the end,
an independent route from the sampler's step-by-step modular tables.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from .base import Example, TaskSampler

OPERATORS = ("+", "-", "*", "/")
MAX_ELL = 64  # largest ℓ with a length tag id; evaluation may go beyond the training L (A.4)


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % k for k in range(2, int(n ** 0.5) + 1))


@dataclass(frozen=True)
class ManoTask(TaskSampler):
    """MANO sampler, tokenizer and checker.

    max_ops [L]: training draws ℓ uniformly from 1..L. modulus: a prime (23 in the paper).
    """

    max_ops: int = 16
    modulus: int = 23
    division: bool = False
    length_tag: bool = False
    synonyms: bool = False
    end_token: bool = False
    seed: int = 0

    name = "mano"
    knob_label = "number of operators ℓ"

    def __post_init__(self):
        if not 1 <= self.max_ops <= MAX_ELL:
            raise ValueError(f"MANO max_ops (L) must lie in 1..{MAX_ELL}, got {self.max_ops}.")
        if not _is_prime(self.modulus):
            raise ValueError(f"MANO modulus must be a prime (23 in the paper), got {self.modulus}.")
        ops = OPERATORS if self.division else OPERATORS[:3]
        m = self.modulus
        object.__setattr__(self, "_ops", ops)
        # modular tables: the sampler reduces mod m at every node
        inv = {v: pow(v, -1, m) for v in range(1, m)}
        table = {
            "+": [[(a + b) % m for b in range(m)] for a in range(m)],
            "-": [[(a - b) % m for b in range(m)] for a in range(m)],
            "*": [[(a * b) % m for b in range(m)] for a in range(m)],
            "/": [[(a * inv[b]) % m if b else None for b in range(m)] for a in range(m)],
        }
        object.__setattr__(self, "_table", table)

    # -- vocabulary -------------------------------------------------------------------------
    # pad 0 | BOS 1,2 | ANS 3,4 | op k: 5+2k, 6+2k | values | length tags (two ids each)
    PAD = 0

    def bos_ids(self): return (1, 2)
    def ans_ids(self): return (3, 4)
    def op_ids(self, op): k = OPERATORS.index(op); return (5 + 2 * k, 6 + 2 * k)
    def value_id(self, v): return 13 + v
    def tag_ids(self, ell): base = 13 + self.modulus + 2 * (ell - 1); return (base, base + 1)

    @property
    def max_knob(self) -> int:
        """The largest ℓ the sampler can draw (evaluation may go past the training L up to here)."""
        return MAX_ELL

    @property
    def train_knobs(self) -> list[int]:
        """The knob values training draws (what an evaluation covers by default)."""
        return list(range(1, self.max_ops + 1))

    @property
    def vocab_size(self) -> int:
        return 13 + self.modulus + 2 * MAX_ELL + int(self.end_token)

    @property
    def bos_id(self) -> int:
        return self.bos_ids()[0]

    @property
    def eos_id(self) -> int | None:
        """The end token after the answer (the last id), or None without `end_token`."""
        return 13 + self.modulus + 2 * MAX_ELL if self.end_token else None

    @property
    def pad_id(self) -> int:
        return self.PAD

    def _pick(self, rng, ids):
        return ids[rng.getrandbits(1)] if self.synonyms else ids[0]

    def decode(self, tokens: list[int]) -> list[str]:
        """Token ids -> readable symbols (values as numbers, specials by name)."""
        names = {0: "<pad>", 1: "<bos>", 2: "<bos>", 3: "<ans>", 4: "<ans>"}
        if self.end_token:
            names[self.eos_id] = "<eos>"
        for op in OPERATORS:
            for i in self.op_ids(op):
                names[i] = op
        for v in range(self.modulus):
            names[self.value_id(v)] = str(v)
        for ell in range(1, MAX_ELL + 1):
            for i in self.tag_ids(ell):
                names[i] = f"<len{ell}>"
        return [names.get(t, f"<unk{t}>") for t in tokens]

    # -- sampler ----------------------------------------------------------------------------
    def sample(self, rng: random.Random, ell: int | None = None) -> Example:
        """One example with exactly `ell` operators (uniform in 1..L when None)."""
        if ell is None:
            ell = rng.randint(1, self.max_ops)
        elif not 1 <= ell <= MAX_ELL:
            raise ValueError(f"MANO needs 1 <= ℓ <= {MAX_ELL}, got ℓ={ell}.")
        m, ops, table = self.modulus, self._ops, self._table
        n_ops = len(ops)
        expr: list[int] = []
        push = expr.append
        value_base = self.value_id(0)
        op_ids = {op: self.op_ids(op) for op in ops}
        synonyms = self.synonyms
        random = rng.random  # int(random() * n) is uniform on 0..n-1 and ~5x cheaper than randrange

        def build(budget: int) -> int:
            if budget == 0:
                v = int(random() * m)
                push(value_base + v)
                return v
            op = ops[int(random() * n_ops)]
            ids = op_ids[op]
            push(ids[int(random() * 2)] if synonyms else ids[0])
            left = int(random() * budget)
            a = build(left)
            mark = len(expr)
            b = build(budget - 1 - left)
            while op == "/" and b == 0:  # redraw a divisor ≡ 0
                del expr[mark:]
                b = build(budget - 1 - left)
            return table[op][a][b]

        answer = build(ell)
        head = [self._pick(rng, self.bos_ids())]
        if self.length_tag:
            head.append(self._pick(rng, self.tag_ids(ell)))
        tokens = head + expr + [self._pick(rng, self.ans_ids()), value_base + answer]
        targets = [False] * (len(tokens) - 1) + [True]
        if self.end_token:
            tokens.append(self.eos_id)
            targets.append(True)
        return Example(tokens, targets, ell, {"answer": answer})

    def encode(self, expression: str | list[str]) -> list[int]:
        """A prompt for `generate()`: BOS [length tag] <prefix expression> ANS, from symbols such as
        "+ 3 * 4 1" (values 0..m-1, operators + - * and / with division)."""
        symbols = expression.split() if isinstance(expression, str) else list(expression)
        ids = []
        for s in symbols:
            if s in self._ops:
                ids.append(self.op_ids(s)[0])
            elif s.isdigit() and int(s) < self.modulus:
                ids.append(self.value_id(int(s)))
            else:
                raise ValueError(f"MANO cannot encode {s!r}: use operators {' '.join(self._ops)} and values "
                                 f"0..{self.modulus - 1}, in prefix order (e.g. '+ 3 * 4 1').")
        self.evaluate_prefix(symbols)  # a malformed expression is refused here, not by the model
        ell = sum(s in self._ops for s in symbols)
        head = [self.bos_ids()[0]] + ([self.tag_ids(ell)[0]] if self.length_tag else [])
        return head + ids + [self.ans_ids()[0]]



    # -- checker ----------------------------------------------------------------------------
    def expression(self, ex: Example) -> list[str]:
        """The prefix expression of an example as symbols."""
        start = 2 if self.length_tag else 1
        return self.decode(ex.tokens[start:self._answer_index(ex)])

    def evaluate_prefix(self, symbols: list[str]) -> int:
        """Exact rational evaluation of a prefix expression, reduced mod m at the end."""
        pos = 0

        def parse() -> Fraction:
            nonlocal pos
            s = symbols[pos]
            pos += 1
            if s in OPERATORS:
                a, b = parse(), parse()
                return {"+": a + b, "-": a - b, "*": a * b}[s] if s != "/" else a / b
            return Fraction(int(s))

        value = parse()
        if pos != len(symbols):
            raise ValueError(f"malformed prefix expression: {len(symbols) - pos} trailing symbols")
        m = self.modulus
        return value.numerator % m * pow(value.denominator % m, -1, m) % m

    def _answer_index(self, ex: Example) -> int:
        """Position of the ANS token (the answer follows it; then EOS with `end_token`)."""
        return len(ex.tokens) - (3 if self.end_token else 2)

    def check(self, ex: Example, predicted: list[int] | None = None) -> bool:
        """True if the answer (the example's own, or the predicted answer token `[id]`; with `end_token`
        `[id, eos]`) is the expression's value."""
        if predicted is None:
            answer_id = ex.tokens[self._answer_index(ex) + 1]
        else:
            predicted = list(predicted)
            if self.end_token and predicted[1:] != [self.eos_id]:
                return False
            answer_id = predicted[0] if predicted else None
        return answer_id == self.value_id(self.evaluate_prefix(self.expression(ex)))
