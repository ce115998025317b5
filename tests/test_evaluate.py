"""Evaluation rows and allocation dumps agree with a direct forward pass."""

import json
import numpy as np
import torch

from anira_lib.evaluation.evaluate import evaluate_knobs, token_frame
from anira_lib.files import read_jsonl
from anira_lib.tasks import collate
from anira_lib.tasks.mano import ManoTask

from .conftest import tiny_model


def test_rows_and_dump_match_direct_forward(tmp_path):
    task = ManoTask(max_ops=3, modulus=5)
    model = tiny_model(vocab_size=task.vocab_size, decider="online", max_depth=4).eval()
    rows = evaluate_knobs(model, task, [1, 3], n_per_knob=12, batch_size=5, dump_path=tmp_path / "a.jsonl",
                          progress=False)
    recs = read_jsonl(tmp_path / "a.jsonl")
    assert list(rows.columns) == ["knob", "n", "accuracy", "mean_depth", "mean_expected_depth"]
    assert rows["knob"].tolist() == [1, 3] and rows["n"].tolist() == [12, 12] and len(recs) == 24
    for row in rows.to_dict("records"):
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
    assert rec["correct"] == (pred == ex.tokens[-1]) == task.check(ex, [pred])
    assert torch.allclose(torch.tensor(rec["exit_probs"]).sum(-1), torch.ones(len(ex.tokens)), atol=1e-3)


def test_correct_only_dump_and_token_frame(tmp_path):
    task = ManoTask(max_ops=3, modulus=5)
    model = tiny_model(vocab_size=task.vocab_size, decider="online", max_depth=4).eval()
    rows = evaluate_knobs(model, task, [1, 2], n_per_knob=20, dump_path=tmp_path / "all.jsonl", progress=False)
    evaluate_knobs(model, task, [1, 2], n_per_knob=20, dump_path=tmp_path / "right.jsonl", progress=False,
                   dump_correct_only=True)
    every, right = read_jsonl(tmp_path / "all.jsonl"), read_jsonl(tmp_path / "right.jsonl")
    assert right == [r for r in every if r["correct"]]
    assert len(right) == round((rows["accuracy"] * rows["n"]).sum())
    frame = token_frame(every)
    assert len(frame) == sum(len(r["tokens"]) for r in every)
    assert list(frame.columns) == ["example", "knob", "position", "symbol", "role", "exit_depth", "expected_depth",
                                   "correct", "q_1", "q_2", "q_3", "q_4"]
    assert (frame["role"] == "answer").sum() == len(every)  # MANO: one answer position (<ans>) per example
    assert frame.loc[frame.role == "answer", "symbol"].eq("<ans>").all()
    assert np.allclose(frame[["q_1", "q_2", "q_3", "q_4"]].sum(axis=1), 1.0, atol=1e-3)
    assert len(token_frame(every, correct_only=True)) == sum(len(r["tokens"]) for r in right)


def test_every_dump_record_names_its_variant(tmp_path):
    from anira_lib.variants import model_variant
    from anira_lib.evaluation.explorer import load_allocations
    from anira_lib.tasks import ManoTask


    task = ManoTask(max_ops=2, modulus=3)
    expected = {}
    for name, kw in {"allocations_early.jsonl": dict(decider="early"), "allocations_online.jsonl": dict(decider="online"),
                     "allocations_fixed-1.jsonl": dict(decider="none", max_depth=1),
                     "allocations_fixed-d.jsonl": dict(decider="none", max_depth=3)}.items():
        model = tiny_model(vocab_size=task.vocab_size, **kw).eval()
        expected[name] = model_variant(model.config)
        evaluate_knobs(model, task, [1], n_per_knob=2, batch_size=2, dump_path=tmp_path / name, progress=False)
    assert sorted(expected.values()) == ["ANIRA-E", "ANIRA-O", "fixed-1", "fixed-D"]
    for name, variant in expected.items():
        assert {r["variant"] for r in map(json.loads, (tmp_path / name).read_text().splitlines())} == {variant}
    assert sorted(load_allocations(tmp_path)) == sorted(expected.values())
    evaluate_knobs(tiny_model(vocab_size=task.vocab_size, decider="none", max_depth=3).eval(), task, [1], n_per_knob=2,
                   dump_path=tmp_path / "named.jsonl", progress=False, variant="fixed-depth")
    assert json.loads((tmp_path / "named.jsonl").read_text().splitlines()[0])["variant"] == "fixed-depth"
