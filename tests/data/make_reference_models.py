"""Writes tests/data/pre_r_models/: three tiny saved models (ANIRA-E, ANIRA-O, fixed depth) and their
logits, exit depths and exit probabilities on fixed inputs, uncached, at eval.

It was run once at commit aa3af82, before the recurrent block was generalised (R layers, input
injection), so `tests/test_block.py` can check that today's code loads those models and reproduces
those outputs bit for bit. Running it again overwrites the reference with today's outputs.

    python tests/data/make_reference_models.py
"""

from pathlib import Path

import torch
from safetensors.torch import save_file

from anira_lib import AniraConfig, AniraForCausalLM

HERE = Path(__file__).parent / "pre_r_models"


def main():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 20, (2, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    outputs = {"input_ids": ids, "attention_mask": mask}
    for decider in ("early", "online", "none"):
        torch.manual_seed(0)
        cfg = AniraConfig(vocab_size=20, hidden_size=16, intermediate_size=32, num_attention_heads=2,
                          max_depth=4, decider=decider, pad_token_id=0)
        model = AniraForCausalLM(cfg).eval()
        if model.model.decider is not None:
            with torch.no_grad():
                model.model.decider.down.weight.normal_(0, 2.0)
        model.save_pretrained(HERE / decider)
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, use_cache=False)
        outputs |= {f"{decider}.logits": out.logits, f"{decider}.exit_depths": out.exit_depths,
                    f"{decider}.exit_probs": out.exit_probs}
    save_file({k: v.contiguous() for k, v in outputs.items()}, HERE / "outputs.safetensors")


if __name__ == "__main__":
    main()
