"""Evaluation rows and allocation dumps agree with a direct forward pass."""

import torch

from anira_lib.evaluate import evaluate_knobs
from anira_lib.io import read_jsonl
from anira_lib.tasks import collate
from anira_lib.tasks.mano import ManoTask

from .conftest import tiny_model


def test_rows_and_dump_match_direct_forward(tmp_path):
    task = ManoTask(max_ops=3, modulus=5)
    model = tiny_model(vocab_size=task.vocab_size, decider="online", max_depth=4).eval()
    rows = evaluate_knobs(model, task, [1, 3], n_per_knob=12, batch_size=5, dump_path=tmp_path / "a.jsonl",
                          progress=False)
    recs = read_jsonl(tmp_path / "a.jsonl")
    assert [r["knob"] for r in rows] == [1, 3] and len(recs) == 24
    for row in rows:
        mine = [r for r in recs if r["knob"] == row["knob"]]
        assert row["accuracy"] == sum(r["correct"] for r in mine) / 12
        assert abs(row["mean_depth"] - sum(r["answer_depth"] for r in mine) / 12) < 1e-9
    ex = task.eval_examples(3, 12)[0]
    out = model(**{k: v for k, v in collate([ex], task.pad_id).items() if k in ("input_ids", "attention_mask")})
    rec = recs[12]
    assert rec["tokens"] == ex.tokens
    assert rec["exit_depths"] == out.exit_depths[0].tolist()
    ans_pos = len(ex.tokens) - 2  # the <ans> position predicts the answer
    assert rec["answer_positions"] == [ans_pos]
    assert rec["answer_depth"] == out.exit_depths[0, ans_pos].item()
    pred = out.logits[0, ans_pos].argmax().item()
    assert rec["correct"] == (pred == ex.tokens[-1]) == task.check(ex, pred)
    assert torch.allclose(torch.tensor(rec["exit_probs"]).sum(-1), torch.ones(len(ex.tokens)), atol=1e-3)
