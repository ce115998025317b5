"""Extrapolation: the four models are variants of one comparison, and knobs past the sampler are refused."""

import pytest

import anira_lib.studies.extrapolation as ex


def test_knobs_beyond_the_sampler_are_refused_by_name():
    assert ex.extrapolation_knobs("mano", {"max_ops": 4}, 8) == list(range(1, 9))
    with pytest.raises(ValueError, match=r"mano cannot sample knob 65: its sampler supports 1\.\.64; pass eval_max <= 64"):
        ex.extrapolation_knobs("mano", {"max_ops": 4}, 65)
    with pytest.raises(ValueError, match="states no largest knob"):
        ex.extrapolation_knobs("depo", {}, 4)


def test_four_models_and_fixed_1_one_comparison_baselines_at_their_own_lr(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(ex, "compare_deciders", lambda settings, knobs, out_dir, **kw: seen.update(
        settings=settings, knobs=knobs, **kw))
    ex.compare_extrapolation({"task": "mano", "task_args": {"modulus": 5}, "lr": 2e-3}, 3, 6, tmp_path,
                             baseline_lr=1e-4, seeds=[0, 1])
    assert seen["knobs"] == [1, 2, 3, 4, 5, 6] and seen["train_max"] == 3 and seen["seeds"] == [0, 1]
    assert seen["settings"]["task_args"] == {"modulus": 5, "max_ops": 3} and seen["settings"]["lr"] == 2e-3
    assert seen["variants"] == {"ANIRA-E": "early", "ANIRA-O": "online",
                                "fixed-depth": {"decider": "none", "lr": 1e-4},
                                "non-recurrent": {"decider": "none", "recurrent": False, "lr": 1e-4},
                                "fixed-1": {"decider": "none", "max_depth": 1, "lr": 1e-4}}  # is depth needed?
