"""The run config takes its model fields from AniraConfig: one list, one set of defaults."""

import dataclasses

from anira_lib.modeling.configuration import AniraConfig
from anira_lib.training.run_config import TrainConfig


def test_model_fields_are_the_run_config_fields_the_model_config_declares():
    run_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(TrainConfig.MODEL_FIELDS) == run_fields & set(AniraConfig.__annotations__)
    assert {"max_depth", "decider", "kl_beta", "recurrent_layers"} <= set(TrainConfig.MODEL_FIELDS)
    assert not {"steps", "lr", "out_dir", "vocab_size"} & set(TrainConfig.MODEL_FIELDS)


def test_every_model_field_defaults_to_the_model_configs_default():
    run = TrainConfig()
    for name in TrainConfig.MODEL_FIELDS:
        assert getattr(run, name) == getattr(AniraConfig, name), name


def test_the_model_config_a_run_builds_carries_every_model_field():
    run = TrainConfig(max_depth=3, decider="online", recurrent_layers=2, kl_beta=0.05)
    cfg = run.model_config(vocab_size=11)
    for name in TrainConfig.MODEL_FIELDS:
        if name != "decider_intermediate_size":  # None in the run config: the model resolves it to 4H
            assert getattr(cfg, name) == getattr(run, name), name
    assert cfg.vocab_size == 11
