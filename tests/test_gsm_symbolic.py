"""GSM-Symbolic: answer extraction and scoring against hand-checked cases, the local-folder reader's
errors, the prompt, and batched generation whose depths match an uncached pass."""

import json

import pytest
import torch

from anira_lib.studies.gsm_symbolic import (GsmDataError, build_prompt, chain_of_thought, evaluate_gsm, extract_answer,
                                    is_correct, read_split, synthetic_rows, write_synthetic)


@pytest.mark.parametrize("text, value", [
    ("So she pays 1,234 dollars. The final answer is 1,234.", 1234.0),
    ("It drops by 8, so the final answer is -5.", -5.0),
    ("Each costs 3.50, the final answer is 3.50", 3.5),
    ("The final answer is 7.\n\nQ: Tom has 9 apples", 7.0),   # a number after the stop marker is not the answer
    ("I do not know.", None),
    ("2 + 2 = 4 and then 10", 10.0),                          # the last number, not the first
    ("The final answer is 12.5.", 12.5),
])
def test_answer_extraction(text, value):
    assert extract_answer(text) == value


def test_scoring_compares_as_floats():
    assert is_correct("The final answer is 42.", 42) and is_correct("... is 42.0", 42.0)
    assert is_correct("1,000 in all: 1,000", 1000.0)
    assert not is_correct("no number here", 3) and not is_correct("The final answer is 41.", 42)
    assert not is_correct("The final answer is 4\nQ: 42", 42)


def test_chain_of_thought_and_prompt():
    shot = {"question": "Ann has 2 pens and buys 3. How many?", "answer": "2 + 3 = <<2+3=5>>5\nShe has 5.\n#### 5"}
    assert chain_of_thought(shot["answer"]) == "2 + 3 = 5 She has 5. The final answer is 5."
    prompt = build_prompt([shot, shot], "Bo has 1 cat. How many?")
    assert prompt.count("Q: ") == 3 and prompt.count("A: Let's think step by step.") == 3
    assert prompt.endswith("Q: Bo has 1 cat. How many?\nA: Let's think step by step.")


def test_the_answer_ends_before_the_stop_marker_or_eos():
    from anira_lib.studies.gsm_symbolic import StopAtMarker, answer_length

    from .test_retrofit import trained_tokenizer

    tok = trained_tokenizer()
    ids = tok("two plus three is five Q: how many", add_special_tokens=False)["input_ids"]
    n = answer_length(tok, ids, tok.eos_token_id, tok.pad_token_id)
    assert tok.decode(ids[:n]).rstrip() == "two plus three is five"
    eos = tok("one and", add_special_tokens=False)["input_ids"] + [tok.eos_token_id] + ids
    assert answer_length(tok, eos, tok.eos_token_id, tok.pad_token_id) == 2
    q, colon = n, n + 1  # "Q" and ":" are two tokens here
    assert tok.decode([ids[q]]) == "Q" and tok.decode([ids[colon]]) == ":"
    stop = StopAtMarker(tok, prompt_length=1)
    rows = torch.tensor([[5] + ids[:colon + 1], [5] + ids[:q + 1] + [ids[colon + 1]]])  # "… Q:", "… Q how"
    assert stop(rows, None).tolist() == [True, False]


def test_folders_and_rows_it_cannot_read_are_named(tmp_path):
    write_synthetic(tmp_path / "gsm", n=5)
    rows = read_split(tmp_path / "gsm", "p2")
    assert len(rows) == 5 and rows[0]["target"] == float(rows[0]["answer"].rsplit("####", 1)[1])
    assert read_split(tmp_path / "gsm" / "generated_data", "main", limit=2)[1]["id"] == 1  # either folder level
    (tmp_path / "gsm" / "generated_data" / "GSM_p1.jsonl").unlink()
    with pytest.raises(GsmDataError, match="has no GSM_p1.jsonl"):
        read_split(tmp_path / "gsm", "p1")
    bad = tmp_path / "bad" / "generated_data"
    bad.mkdir(parents=True)
    (bad / "GSM_symbolic.jsonl").write_text(json.dumps({"question": "q", "answer": "4"}) + "\n")
    with pytest.raises(GsmDataError, match=r"GSM_symbolic.jsonl line 1 has no '####'"):
        read_split(tmp_path / "bad", "main")
    (bad / "GSM_symbolic.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 4"}) + "\n{oops\n")
    with pytest.raises(GsmDataError, match=r"GSM_symbolic.jsonl line 2 is not JSON"):
        read_split(tmp_path / "bad", "main")
    (bad / "GSM_symbolic.jsonl").write_text(json.dumps({"answer": "#### 4"}) + "\n")
    with pytest.raises(GsmDataError, match=r"line 1 has no field\(s\) \['question'\]"):
        read_split(tmp_path / "bad", "main")
    with pytest.raises(GsmDataError, match="split 'p3' is unknown"):
        read_split(tmp_path / "gsm", "p3")


def test_synthetic_rows_add_clauses_and_check_out():
    for extra in (0, 1, 2):
        for row in synthetic_rows(20, extra):
            assert row["question"].count("Then ") == 1 + extra
            steps = [line for line in row["answer"].splitlines() if "=" in line]
            assert len(steps) == 1 + extra and steps[-1].endswith(f"{row['answer'].rsplit('#### ', 1)[1]} " +
                                                                  steps[-1].split()[-1])


def test_generation_depths_are_the_uncached_passes(tmp_path):
    from anira_lib.modeling.retrofit import from_llama

    from .test_retrofit import tiny_llama, trained_tokenizer

    tok = trained_tokenizer()
    folder = write_synthetic(tmp_path / "gsm", n=3, shots=2)
    models = {}
    for name, decider in (("ANIRA-E", "early"), ("ANIRA-O", "online")):
        model = from_llama(tiny_llama(vocab=len(tok)), prelude=1, recurrent=3, coda=2, max_depth=4, decider=decider,
                           adapter_init="random")
        with torch.no_grad():
            model.model.decider.down.weight.normal_(0, 4.0)
        models[name] = model
    frame, summary = evaluate_gsm(models, tok, folder, folder / "shots.jsonl", splits=("main", "p1"), max_new_tokens=6,
                                  batch_size=2, progress=False)
    assert len(frame) == 2 * 2 * 3 and set(frame["split"]) == {"main", "p1"}
    assert list(summary.columns) == ["variant", "split", "n", "accuracy", "depth", "paper_accuracy", "paper_depth"]
    assert summary["accuracy"].between(0, 100).all() and summary["depth"].between(1, 4).all()
    assert summary.set_index(["variant", "split"]).loc[("ANIRA-O", "p1"), "paper_accuracy"] == 23.02
    # the cache's depths are those of one uncached pass over prompt + answer (the cache contract)
    row = frame[(frame["variant"] == "ANIRA-O") & (frame["split"] == "main")].iloc[0]
    shots = [json.loads(line) for line in (folder / "shots.jsonl").read_text().splitlines()]
    prompt = tok(build_prompt(shots, read_split(folder, "main")[0]["question"]), add_special_tokens=False)["input_ids"]
    gen = models["ANIRA-O"].generate(torch.tensor([prompt]), max_new_tokens=int(row["answer_tokens"]), do_sample=False,
                                     pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    with torch.no_grad():
        full = models["ANIRA-O"](input_ids=gen)
    P, n = len(prompt), int(row["answer_tokens"])
    assert row["depth_sum"] == full.exit_depths[0, P - 1:P - 1 + n].sum().item()


@pytest.mark.parametrize("content, message", [
    (b"42\n", r"line 1 is int JSON, not an object"),
    (b"null\n", r"line 1 is NoneType JSON, not an object"),
    (b'{"question": "q", "answer": "#### 4"}\n{"question": "\xff", "answer": "#### 1"}\n', r"line 2 is not UTF-8 \(byte 0xff\)"),
])
def test_rows_that_are_not_objects_or_not_utf8_are_named(tmp_path, content, message):
    """Issue 31: a valid-JSON row that is not an object raised a raw TypeError; a bad byte a
    UnicodeDecodeError naming neither file nor line."""
    folder = tmp_path / "generated_data"
    folder.mkdir()
    (folder / "GSM_symbolic.jsonl").write_bytes(content)
    with pytest.raises(GsmDataError, match=message):
        read_split(tmp_path, "main")


def test_a_missing_split_fails_before_anything_is_generated(tmp_path):
    """Issue 31: a folder without GSM_p2.jsonl generated every answer of main and p1, then failed and
    discarded them."""
    write_synthetic(tmp_path / "gsm", n=3)
    (tmp_path / "gsm" / "generated_data" / "GSM_p2.jsonl").unlink()

    class Untouchable:
        def eval(self):
            raise AssertionError("a model was used before every split was read")

    with pytest.raises(GsmDataError, match="has no GSM_p2.jsonl"):
        evaluate_gsm({"x": Untouchable()}, tokenizer=None, folder=tmp_path / "gsm",
                     shots=tmp_path / "gsm" / "shots.jsonl" if (tmp_path / "gsm" / "shots.jsonl").exists()
                     else synthetic_rows(2))
