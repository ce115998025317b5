"""Packed causal-LM rows: hand-worked packing, per-document isolation (a packed row's logits equal
each document run alone), local files through `datasets`, and training a converted Llama on them."""

import json
import os
import subprocess
import sys

import pytest
import torch

from anira_lib import AniraConfig, AniraForCausalLM
from anira_lib.modeling.model import IGNORE_INDEX as X
from anira_lib.tasks.packing import PackedStream, data_files, load_packed, pack_documents, stream_packed

from .test_retrofit import tiny_llama, trained_tokenizer


def test_rows_by_hand():
    rows = list(pack_documents([[5, 6, 7], [8, 9], [10, 11, 12, 13, 14]], max_length=4, eos_id=2))
    assert rows == [
        {"input_ids": [5, 6, 7, 2], "position_ids": [0, 1, 2, 3], "labels": [X, 6, 7, 2]},
        {"input_ids": [8, 9, 2, 10], "position_ids": [0, 1, 2, 0], "labels": [X, 9, 2, X]},
        {"input_ids": [11, 12, 13, 14], "position_ids": [0, 1, 2, 3], "labels": [11, 12, 13, 14]},
    ]  # the continuing document restarts at 0 in its new row; the last partial row ([2]) is dropped
    assert list(pack_documents([[3, 4, 5, 6]], 2)) == [{"input_ids": [3, 4], "position_ids": [0, 1], "labels": [X, 4]},
                                                       {"input_ids": [5, 6], "position_ids": [0, 1], "labels": [5, 6]}]
    with pytest.raises(ValueError, match="max_length must be at least 2"):
        list(pack_documents([[1]], 1))


def packed_model(decider, attn):
    torch.manual_seed(0)
    cfg = AniraConfig(vocab_size=30, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                      max_depth=3, recurrent_layers=2, input_injection=True, decider=decider)
    model = AniraForCausalLM(cfg).eval()
    model.set_attn_implementation(attn)
    if model.model.decider is not None:
        with torch.no_grad():
            model.model.decider.down.weight.normal_(0, 3.0)  # tokens exit at several depths
    return model


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("decider", ["early", "online", "none"])
def test_a_packed_row_equals_each_document_run_alone(decider, attn):
    g = torch.Generator().manual_seed(1)
    docs = [torch.randint(3, 30, (n,), generator=g).tolist() for n in (5, 9, 3)]
    (row,) = pack_documents(docs, max_length=20, eos_id=2)  # 6 + 10 + 4 tokens: one full row
    model = packed_model(decider, attn)
    ids, pos = torch.tensor([row["input_ids"]]), torch.tensor([row["position_ids"]])
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=pos)
        start = 0
        for doc in docs:
            n = len(doc) + 1
            alone = model(input_ids=ids[:, start:start + n])
            assert (packed.logits[0, start:start + n] - alone.logits[0]).abs().max().item() < 1e-5
            assert torch.equal(packed.exit_depths[0, start:start + n], alone.exit_depths[0])
            start += n
        wrong = model(input_ids=ids, position_ids=torch.arange(20).unsqueeze(0))  # one long document
    assert (wrong.logits[0, 6:] - packed.logits[0, 6:]).abs().max().item() > 1e-3


def write_corpus(folder, n_docs=60):
    import pyarrow as pa
    import pyarrow.parquet as pq

    words = "one two three four five plus minus is makes and".split()
    docs = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(3 + i % 9)) for i in range(n_docs)]
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": docs[: n_docs // 2], "id": list(range(n_docs // 2))}), folder / "part0.parquet")
    (folder / "part1.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[n_docs // 2:]))
    return docs


def test_local_files_tokenised_and_packed_through_datasets(tmp_path):
    docs = write_corpus(tmp_path / "pq", 60)
    tok = trained_tokenizer()
    rows = load_packed(tmp_path / "pq" / "part0.parquet", tok, max_length=16, cache_dir=tmp_path / "cache")
    stream = [t for d in docs[:30] for t in tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    assert len(rows) == len(stream) // 16
    flat = torch.cat([rows[i]["input_ids"] for i in range(len(rows))]).tolist()
    assert flat == stream[:len(flat)]  # documents in order, each followed by EOS, nothing lost but the tail
    first = rows[0]
    assert first["position_ids"].tolist()[:4] == [0, 1, 2, 3] and (first["labels"][0] == X)
    with pytest.raises(ValueError, match="must all be one of"):
        load_packed([tmp_path / "pq" / "part0.parquet", tmp_path / "pq" / "part1.jsonl"], tok, 16)
    with pytest.raises(ValueError, match="has no field 'body'.*text_field="):
        load_packed(tmp_path / "pq" / "part0.parquet", tok, 16, text_field="body")
    with pytest.raises(FileNotFoundError, match="does not exist; pass local text files"):
        data_files(tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="fewer than max_length=100000 tokens"):
        load_packed(tmp_path / "pq" / "part1.jsonl", tok, 100000)


def test_a_stream_gives_load_packeds_rows_in_order_and_each_rank_its_share(tmp_path):
    write_corpus(tmp_path / "c", 120)
    tok = trained_tokenizer()
    path = tmp_path / "c" / "part1.jsonl"
    ahead = load_packed(path, tok, 16, cache_dir=tmp_path / "cache")
    streamed = list(stream_packed(path, tok, 16))
    assert len(streamed) == len(ahead) > 8
    for key in ("input_ids", "position_ids", "labels"):
        assert [r[key] for r in streamed] == [ahead[i][key].tolist() for i in range(len(ahead))], key
    for rank in (0, 1):  # one file for two processes: every other row
        assert list(stream_packed(path, tok, 16, rank=rank, world=2)) == streamed[rank::2]


def test_packed_stream_batches_resume_from_their_state_without_rereading(tmp_path):
    write_corpus(tmp_path / "c", 120)
    tok = trained_tokenizer()
    make = lambda: stream_packed(tmp_path / "c" / "part1.jsonl", tok, 16)  # noqa: E731
    rows = [r["input_ids"] for r in make()]
    B = 3
    epoch = len(rows) // B + 2  # past the end: the stream starts over
    ref = PackedStream(make)
    batches = [[r["input_ids"] for r in ref.batch(step, B)] for step in range(epoch)]
    again = rows + rows
    assert batches == [again[i * B:(i + 1) * B] for i in range(epoch)]
    assert [r["input_ids"] for r in ref.batch(1, B)] == batches[1]  # out of order: a second pass...
    assert [r["input_ids"] for r in ref.batch(epoch, B)] == again[epoch * B:(epoch + 1) * B]  # ...left the position

    first = PackedStream(make)
    for step in range(4):
        first.batch(step, B)
    state = first.state_dict()
    assert state["next_step"] == 4 and state["epoch"] == 0
    resumed, fresh = PackedStream(make), PackedStream(make)
    resumed.load_state_dict(state)
    taken = []
    for stream in (resumed, fresh):
        take = stream._take
        stream._take = lambda n, take=take: taken.append(n) or take(n)
    assert [r["input_ids"] for r in resumed.batch(4, B)] == batches[4] == [r["input_ids"] for r in fresh.batch(4, B)]
    assert taken == [0, B, 4 * B, B]  # from the state: B rows read; without it: the 4·B before them too
    with pytest.raises(ValueError, match="fewer tokens than one row of max_length"):
        PackedStream(lambda: stream_packed(tmp_path / "c" / "part1.jsonl", tok, 100000)).batch(0, 1)


def lm_setup(tmp_path):
    """A corpus, a tokenizer folder and a converted tiny Llama sized to the tokenizer."""
    from anira_lib.modeling.retrofit import convert_llama

    write_corpus(tmp_path / "corpus", 120)
    tok = trained_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    llama = tiny_llama(vocab=len(tok))
    llama.save_pretrained(tmp_path / "llama")
    tok.save_pretrained(tmp_path / "llama")
    convert_llama(tmp_path / "llama", tmp_path / "anira", prelude=2, recurrent=2, coda=2, max_depth=3, decider="online")
    return {"task": "packed_lm", "task_args": {"data": str(tmp_path / "corpus" / "part1.jsonl"),
                                               "tokenizer": str(tmp_path / "tok"), "max_length": 16, "eval_rows": 4,
                                               "cache_dir": str(tmp_path / "cache")},
            "init_from": str(tmp_path / "anira"), "decider": "online", "batch_size": 4, "log_every": 1, "checkpoint_every": 3,
            "warmup_steps": 1, "progress": False, "kl_beta": 0.05}


def test_a_converted_llama_trains_on_packed_rows_and_resumes_exactly(tmp_path):
    from anira_lib.training.run_config import TrainConfig
    from anira_lib.training.train import train

    base = lm_setup(tmp_path)
    full = train(TrainConfig.from_dict({**base, "steps": 6, "out_dir": str(tmp_path / "full")}))
    train(TrainConfig.from_dict({**base, "steps": 3, "out_dir": str(tmp_path / "part")}))
    resumed = train(TrainConfig.from_dict({**base, "steps": 6, "out_dir": str(tmp_path / "part")}), resume=True)
    assert [m["loss"] for m in resumed.metrics] == [m["loss"] for m in full.metrics]
    assert full.model.config.kl_beta == 0.05 and full.model.config.decider == "online"
    with pytest.raises(ValueError, match="holds a model with decider='online', the run config says decider='early'"):
        train(TrainConfig.from_dict({**base, "decider": "early", "steps": 1, "out_dir": str(tmp_path / "wrong")}))
    with pytest.raises(FileNotFoundError, match="is not a saved model"):
        train(TrainConfig.from_dict({**base, "init_from": str(tmp_path), "steps": 1, "out_dir": str(tmp_path / "none")}))
    weights = tmp_path / "anira" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:7])  # a copy cut short
    with pytest.raises(ValueError, match=r"init_from=.* cannot be loaded as a model \(.*\); the folder is damaged"):
        train(TrainConfig.from_dict({**base, "steps": 1, "out_dir": str(tmp_path / "cut")}))
    assert (tmp_path / "full" / "model" / "tokenizer.json").is_file()  # the tokenizer beside the model
    batch = full.task.train_batch(0, 4)
    assert batch["input_ids"].shape == (4, 16) and (batch["position_ids"] == 0).sum() >= 4
    from anira_lib.training.training_step import model_inputs

    assert set(model_inputs(batch)) == {"input_ids", "position_ids", "labels"}  # no mask: per-document attention


def test_a_streaming_run_resumes_where_its_checkpoint_left_the_stream(tmp_path, monkeypatch):
    from anira_lib.training.run_config import TrainConfig
    from anira_lib.training.checkpoint import load_checkpoint
    from anira_lib.training.train import train

    base = lm_setup(tmp_path)
    base["task_args"] = {**base["task_args"], "streaming": True, "eval_data": base["task_args"]["data"]}
    full = train(TrainConfig.from_dict({**base, "steps": 6, "out_dir": str(tmp_path / "full")}))
    train(TrainConfig.from_dict({**base, "steps": 3, "out_dir": str(tmp_path / "part")}))
    state = load_checkpoint(tmp_path / "part")["data"]
    assert len(state) == 1 and state[0]["next_step"] == 3 and state[0]["stream"]
    taken, take = [], PackedStream._take
    monkeypatch.setattr(PackedStream, "_take", lambda self, n: taken.append(n) or take(self, n))
    resumed = train(TrainConfig.from_dict({**base, "steps": 6, "out_dir": str(tmp_path / "part")}), resume=True)
    assert [m["loss"] for m in resumed.metrics] == [m["loss"] for m in full.metrics]
    assert max(taken) == base["batch_size"]  # read on from the checkpoint's position: no re-reading of steps 0-2
    assert resumed.task.train_rows is None
    with pytest.raises(ValueError, match="streaming=true .* pass eval_data="):
        args = {**base["task_args"], "eval_data": None}
        train(TrainConfig.from_dict({**base, "task_args": args, "steps": 1, "out_dir": str(tmp_path / "x")}))


@pytest.mark.parametrize("streaming", [False, True])
def test_two_gloo_processes_train_the_packed_task_and_resume(tmp_path, streaming):
    """torchrun, 2 CPU processes: 4 steps, then 2 more resumed from the checkpoint (streaming: each
    process its own share of the rows and its own position in the checkpoint)."""
    base = lm_setup(tmp_path)
    if streaming:
        base["task_args"] = {**base["task_args"], "streaming": True, "eval_data": base["task_args"]["data"]}
    args = [f"task={base['task']}", f"task_args={json.dumps(base['task_args'])}", f"init_from={base['init_from']}",
            "decider=online",
            "batch_size=4", "checkpoint_every=2", "log_every=1", "progress=false", "warmup_steps=1", f"out_dir={tmp_path / 'ddp'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "anira_lib.training.train"]
    for steps, resume in ((4, []), (6, ["--resume"])):
        proc = subprocess.run(cmd + [*args, f"steps={steps}", *resume], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    from anira_lib.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "ddp")
    assert ckpt["step"] == 6 and len(ckpt["rng"]) == 2
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6]  # resumed, nothing logged twice
    assert ("data" in ckpt) == streaming
    if streaming:
        assert [d["next_step"] for d in ckpt["data"]] == [6, 6]  # the rank is in the stream, not its state
        from anira_lib.training.train import main

        with pytest.raises(SystemExit, match="written by 2 processes, each streaming its own share.*resume it with 2"):
            main([*args, "steps=8", "--resume"])


@pytest.mark.parametrize("content, words", [
    ("", "is empty: no documents to pack"),
    ("\n\n", "holds only blank lines"),
    ('{"text": "a b"}\n{"text": "c d"\n', "data.jsonl:2: not a JSON line"),
    ('{"text": "a b"}\n42\n', "data.jsonl:2: a JSON number, not an object"),
    ('null\n', "data.jsonl:1: a JSON null, not an object"),
])
def test_bad_json_lines_are_refused_naming_the_file_and_line(tmp_path, content, words):
    from anira_lib.tasks.packing import check_files

    path = tmp_path / "data.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        check_files([str(path)])
    assert words in str(err.value) and "\n" not in str(err.value)


def test_good_json_lines_pass_the_check(tmp_path):
    from anira_lib.tasks.packing import check_files

    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a b"}\n\n{"text": "c"}\n')
    check_files([str(path)])
