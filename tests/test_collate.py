"""collate: right padding, labels only where supervised, exactly as a per-example reference builds them."""

import random

import torch

from anira_lib.modeling.model import IGNORE_INDEX
from anira_lib.tasks import Example, collate, get_task, rng_for


def reference_collate(examples, pad_id):
    T = max(len(e.tokens) for e in examples)
    out = {"input_ids": torch.full((len(examples), T), pad_id), "labels": torch.full((len(examples), T), IGNORE_INDEX),
           "attention_mask": torch.zeros(len(examples), T, dtype=torch.long)}
    for b, e in enumerate(examples):
        for i, (tok, sup) in enumerate(zip(e.tokens, e.targets)):
            out["input_ids"][b, i] = tok
            out["attention_mask"][b, i] = 1
            if sup:
                out["labels"][b, i] = tok
    out["knob"] = torch.tensor([e.knob for e in examples])
    return out


def assert_same(got, want):
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == torch.long, k
        assert torch.equal(got[k], want[k]), k


def test_random_examples_match_the_reference():
    rng = random.Random(0)
    for _ in range(200):
        examples = []
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(1, 9)
            examples.append(Example([rng.randrange(3, 40) for _ in range(n)], [rng.random() < 0.3 for _ in range(n)],
                                    rng.randint(0, 5)))
        pad = rng.choice([0, 2])
        assert_same(collate(examples, pad), reference_collate(examples, pad))


def test_task_batches_match_the_reference():
    for name, kw in [("mano", {"max_ops": 3, "modulus": 5}), ("brevo", {"max_nodes": 6}),
                     ("depo", {"max_nodes": 5, "max_k": 3, "queries": 2})]:
        task = get_task(name, seed=0, **kw)
        rng = rng_for(0, "collate", name)
        examples = [task.sample(rng) for _ in range(32)]
        assert_same(collate(examples, task.pad_id), reference_collate(examples, task.pad_id))


def test_a_supervised_token_keeps_its_id_and_padding_is_ignored():
    batch = collate([Example([1, 5, 7], [False, False, True], 3), Example([1, 6], [False, True], 1)], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 5, 7], [1, 6, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 7], [IGNORE_INDEX, 6, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["knob"].tolist() == [3, 1]
