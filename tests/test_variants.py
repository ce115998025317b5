"""One source of variant names: every known variant's directory reads back as its name, and a model's
config names the variant it was trained as."""

import itertools

import pytest

from anira_lib.modeling.configuration import AniraConfig
from anira_lib.studies.experiments import variant_config
from anira_lib.variants import BASELINES, DEPTH_BASELINES, VARIANTS, model_variant, name_from_dir, variant_dir

KNOWN = {**VARIANTS, **DEPTH_BASELINES, **BASELINES}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_every_known_variant_directory_reads_back_as_its_name(name):
    assert name_from_dir(variant_dir(name, KNOWN[name])) == name


def test_directories_are_distinct_and_unknown_names_stay():
    dirs = [variant_dir(n, s) for n, s in KNOWN.items()]
    assert len(set(dirs)) == len(dirs)
    assert name_from_dir("none") == "fixed-depth"  # a decider spec 'none' names its folder 'none'
    assert name_from_dir("my-variant") == "my-variant"


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_a_trained_variant_s_config_names_it(name):
    """The name a model's config gives (what dumps record) is the study's name for that variant, except
    that the Fig. 9 'fixed-depth' baseline is the fixed-D model under another name."""
    cfg = variant_config({"task": "mano", "max_depth": 4}, "runs/x", name, KNOWN[name])
    expected = {"fixed-depth": "fixed-D"}.get(name, name)
    assert model_variant(cfg.model_config(vocab_size=16)) == expected


CONFIGS = [(d, r, n) for d, r, n in itertools.product(("early", "online", "none"), (True, False), (1, 4))
           if r or d == "none"]  # a non-recurrent model has no decider


@pytest.mark.parametrize("decider,recurrent,depth", CONFIGS)
def test_model_variant_over_every_config(decider, recurrent, depth):
    config = AniraConfig(vocab_size=16, decider=decider, recurrent=recurrent, max_depth=depth)
    want = {"early": "ANIRA-E", "online": "ANIRA-O"}.get(decider) or (
        "non-recurrent" if not recurrent else ("fixed-1" if depth == 1 else "fixed-D"))
    assert model_variant(config) == want
