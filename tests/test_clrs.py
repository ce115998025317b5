"""CLRS-Text from dm-clrs 2.0.3: golden strings byte for byte, no heavy framework imported, the 24
tasks, clear errors, a self-healing cache and a tokenizer saved with the model."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from anira_lib.tasks import clrs_text
from anira_lib.tasks import get_task, rng_for
from anira_lib.tasks.clrs import CharTokenizer, cache_file, compare_with_published, load_pair, read_published

GOLDEN = Path(__file__).resolve().parent / "data" / "clrs_text_golden_seed0_len5.txt"


def golden_strings():
    blocks = re.split(r"^===== (\S+) len=5 use_hints=(True|False)\n", GOLDEN.read_text(), flags=re.M)
    return {(blocks[i], blocks[i + 1] == "True"): blocks[i + 2] for i in range(1, len(blocks), 3)}


def test_generated_text_equals_the_golden_strings_byte_for_byte():
    golden = golden_strings()
    assert len(golden) == 60 and {a for a, _ in golden} == set(clrs_text.algorithms())
    for (algorithm, hints), text in golden.items():
        assert clrs_text.golden_text(algorithm, 5, use_hints=hints) == text, (algorithm, hints)


def test_generation_imports_no_tensorflow_jax_or_haiku():
    """In a fresh interpreter: generate, then none of the heavy modules (or a stand-in) is loaded."""
    code = (
        "import sys, importlib.util\n"
        "from anira_lib.tasks import clrs_text\n"
        "clrs_text.generate('bfs', 5, 3, seed=0)\n"
        "clrs_text.golden_text('graham_scan', 5, use_hints=True)\n"
        "heavy = clrs_text.HEAVY_MODULES\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "print(sorted(h for h in heavy if importlib.util.find_spec(h) is not None))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]", f"loaded: {out[0]}"
    assert out[1] == "[]", f"the test environment has heavy frameworks installed: {out[1]}"


def test_24_tasks_from_30_algorithms_and_the_dm_clrs_sizes():
    tasks = clrs_text.tasks()
    assert len(clrs_text.algorithms()) == 30 and len(tasks) == 24
    assert tasks["sort"] == ["bubble_sort", "heapsort", "insertion_sort", "quicksort"]
    assert sum(len(v) for v in clrs_text.train_sizes().values()) == 215
    assert clrs_text.train_sizes()["bridges"] == [4, 5] and clrs_text.eval_sizes()["binary_search"][-1] == 64
    a, b = clrs_text.generate("quicksort", 6, 2, seed=3), clrs_text.generate("heapsort", 6, 2, seed=3)
    assert [r["answer"] for r in a] == [r["answer"] for r in b]  # same text but the name line
    assert [r["question"].split("\n", 1)[1] for r in a] == [r["question"].split("\n", 1)[1] for r in b]


def test_bad_names_sizes_and_corrupt_caches(tmp_path):
    with pytest.raises(KeyError, match="unknown CLRS algorithm 'bogosort'"):
        clrs_text.generate("bogosort", 5, 1, seed=0)
    with pytest.raises(ValueError, match="outside minimum's range 4..64"):
        clrs_text.generate("minimum", 99, 1, seed=0)
    rows = load_pair(tmp_path, "eval", "bfs", 5, 3, 4)
    path = cache_file(tmp_path, "eval", "bfs", 5, 3, 4)
    path.write_text(path.read_text().replace("bfs", "dfs", 1))  # corrupt one byte range
    with pytest.warns(UserWarning, match="does not match its sha256; regenerating"):
        again = load_pair(tmp_path, "eval", "bfs", 5, 3, 4)
    assert again == rows and rows == clrs_text.generate("bfs", 5, 4, seed=3)


def test_task_samples_tokenizes_and_saves_its_tokenizer(tmp_path):
    task = get_task("clrs", algorithms=("minimum", "bfs"), train_sizes={"minimum": [4], "bfs": [4, 5]},
                    train_samples=30, eval_samples=8, data_dir=str(tmp_path))
    assert task.train_pairs == [("bfs", 4), ("bfs", 5), ("minimum", 4)]
    assert task.train_knobs == task.train_pairs  # what a checkpoint evaluation covers by default
    ex = task.sample(rng_for(0, "t"))
    text = task.tokenizer.decode(ex.tokens)
    assert text.startswith("<bos>") and text.endswith("\n\n<eos>")
    answer = task.tokenizer.decode([t for t, s in zip(ex.tokens, ex.targets) if s])
    assert answer.endswith("\n\n<eos>") and ":" not in answer
    assert task.sample(rng_for(0, "t")).tokens == ex.tokens  # deterministic per stream
    evals = task.eval_examples(("bfs", 9), 10)
    assert len(evals) == 10 and all(e.knob == 9 for e in evals)  # 8 from seed 3, then seed 14
    assert 0 <= task.overlap(("bfs", 4)) <= 1 and task.overlap(("minimum", 7)) == 0
    task.save_pretrained(tmp_path)
    assert CharTokenizer.load(tmp_path) == task.tokenizer
    with pytest.raises(ValueError, match="not in the tokenizer's alphabet"):
        task.tokenizer.encode("€")
    assert json.loads((tmp_path / "clrs_tokenizer.json").read_text())["chars"] == task.tokenizer.chars


def test_published_files_are_read_with_datasets_and_compared(tmp_path):
    """Tiny stand-ins for the published files (parquet and JSONL), read through `datasets`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ours = clrs_text.generate("bfs", 4, 3, seed=0)
    published = ours[:2] + [{"question": "bfs:\nother\n", "answer": "x\n\n", "algo_name": "bfs", "length": 4}]
    folder = tmp_path / "published"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{**r, "text": r["question"] + r["answer"]} for r in published]),
                   folder / "train-00000.parquet")
    rows = read_published(folder)
    assert rows == [{k: r[k] for k in ("question", "answer", "algo_name", "length")} for r in published]
    (tmp_path / "one.jsonl").write_text("".join(json.dumps(r) + "\n" for r in published))
    assert read_published(tmp_path / "one.jsonl") == rows
    report = compare_with_published(rows, ours)
    assert report == [{"algorithm": "bfs", "length": 4, "published": 3, "generated": 3,
                       "generated_in_published": pytest.approx(2 / 3)}]
    with pytest.raises(FileNotFoundError, match="no .parquet/.json/.jsonl"):
        read_published(tmp_path / "empty")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_published(tmp_path / "bad.jsonl")
