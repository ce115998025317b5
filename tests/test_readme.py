"""The README's code runs as shown, and task prompts and end tokens work with generate()."""

import random
import re
from pathlib import Path

import pytest

from anira_lib.training.run_config import TrainConfig
from anira_lib.tasks import TASKS, get_task
from anira_lib.training.train import build_model

README = Path(__file__).parent.parent / "README.md"


def readme_snippet() -> str:
    text = README.read_text()
    match = re.search(r"<!-- README snippet: run by tests/test_readme.py -->\n```python\n(.*?)```", text, re.S)
    assert match, "the README's generation snippet is missing"
    return match.group(1)


@pytest.mark.slow
def test_readme_generation_snippet_stops_at_the_task_end_token(tmp_path, capsys):
    code = readme_snippet().replace('"runs/readme_mano"', repr(str(tmp_path / "run")))
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    task, prompt, out = scope["task"], scope["prompt"], scope["out"]
    tokens = out[0].tolist()
    assert tokens[: prompt.shape[1]] == prompt[0].tolist()
    assert tokens[-1] == task.eos_id and len(tokens) == prompt.shape[1] + 2  # one answer, then <eos>
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == str(task.decode(tokens))
    assert printed == "['<bos>', '*', '2', '2', '<ans>', '1', '<eos>']"  # what the README says it prints


def test_mano_encode_builds_the_prompt_of_an_example():
    task = get_task("mano", max_ops=4, modulus=5, end_token=True, length_tag=True)
    rng = random.Random(3)
    for _ in range(50):
        ex = task.sample(rng)
        assert task.check(ex)
        assert task.encode(task.expression(ex)) == ex.tokens[:-2]  # all but the answer and <eos>
    with pytest.raises(ValueError, match=r"MANO cannot encode '7': use operators \+ - \* and values 0..4"):
        task.encode("+ 7 1")
    with pytest.raises(ValueError, match="trailing symbols"):
        task.encode("+ 1 2 3")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_gives_the_model_its_own_end_token(name, tmp_path):
    knobs = {"clrs": {"algorithms": ["minimum"], "train_samples": 50, "eval_samples": 5,
                      "data_dir": str(tmp_path / "clrs")}}.get(name, {})  # a small split of its own, not data/
    if name == "packed_lm":  # local text and the model's tokenizer, made here
        from .test_packing import write_corpus
        from .test_retrofit import trained_tokenizer

        write_corpus(tmp_path / "corpus", 60)
        trained_tokenizer().save_pretrained(tmp_path / "tok")
        knobs = {"data": str(tmp_path / "corpus" / "part1.jsonl"), "tokenizer": str(tmp_path / "tok"),
                 "max_length": 16, "eval_rows": 2, "cache_dir": str(tmp_path / "cache")}
    cfg = TrainConfig(task=name, task_args=knobs)
    task = get_task(name, **knobs)
    model_cfg = build_model(cfg, task).config
    assert (model_cfg.bos_token_id, model_cfg.eos_token_id) == (task.bos_id, task.eos_id)
    end = "</s>" if name == "packed_lm" else "<eos>"  # packed_lm's is its tokenizer's
    assert task.eos_id is None or task.decode([task.eos_id]) in ([end], end)
    if name == "mano":
        assert task.eos_id is None  # the paper's MANO format has no end token (it used to claim a BOS id)
