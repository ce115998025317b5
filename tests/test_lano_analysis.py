"""LANO analysis plumbing: window proxies aligned with tokens, the proxy cache, KL to the exact
distribution, Table 1 correlations and generation validity."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from anira_lib import AniraConfig, AniraForCausalLM
from anira_lib.analysis.correlations import correlate, proxy_correlations
from anira_lib.evaluation.evaluate import generation_validity, kl_to_exact
from anira_lib.tasks.pcfg import PCFGSampler, load_pcfg
from anira_lib.analysis.prefix_parser import FEATURES, PrefixParser, to_cnf
from anira_lib.analysis.proxies import compute_proxies, terminal_order, window_proxies
from anira_lib.tasks import get_task
from anira_lib.tasks.lano import EOS


@pytest.fixture(scope="module")
def windows():
    task = get_task("lano", window=600)
    return [ex.tokens for ex in task.eval_examples(None, 3, seed=7)]


def test_window_proxies_restart_at_each_sentence(windows):
    w = windows[0]
    assert EOS in w
    out = window_proxies(w)
    cut = w.index(EOS)
    parser = PrefixParser(to_cnf(load_pcfg("cfg3b")))
    first, second = parser.parse(w[:cut]), parser.parse(w[cut + 1:])
    for f in FEATURES:
        np.testing.assert_array_equal(out[f][:cut], first.features[f])
        assert np.isnan(out[f][cut])
        np.testing.assert_array_equal(out[f][cut + 1:], second.features[f][: len(w) - cut - 1])
    np.testing.assert_allclose(out["next_token"][cut], parser.parse([]).next_token[0])  # after EOS: a new sentence
    assert out["next_token"][cut - 1, -1] > 0  # the sentence may end where it does
    assert terminal_order() == ["1", "2", "3"]


def test_proxy_cache_is_reused_and_a_corrupt_file_recomputed(windows, tmp_path):
    first = compute_proxies(windows, processes=1, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and first["ops_mul"].shape == (3, 600) and first["next_token"].shape == (3, 600, 4)
    again = compute_proxies(windows, processes=2, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first["ops_mul"], again["ops_mul"])
    files[0].write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = compute_proxies(windows, processes=1, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first["active_gamma_slice"], rebuilt["active_gamma_slice"])
    with pytest.raises(ValueError, match="same length"):
        compute_proxies([windows[0], windows[1][:10]], cache_dir=None)


def test_kl_to_exact_closed_form():
    exact = np.array([[0.5, 0.5, 0.0, 0.0], [np.nan] * 4])
    model = np.zeros((2, 6))
    model[:, [1, 2, 3, 4]] = [0.25, 0.25, 0.25, 0.25]
    model[:, 0] = 1.0  # mass on PAD is renormalised away
    kl = kl_to_exact(model, exact, [1, 2, 3, 4])
    assert kl[0] == pytest.approx(math.log(2)) and np.isnan(kl[1])


def test_correlations_match_scipy_and_intervals_cover_them():
    rng = np.random.default_rng(0)
    proxy = rng.integers(0, 10, (20, 50)).astype(float)
    depth = 0.3 * proxy + rng.normal(size=proxy.shape)
    depth[0, :5] = np.nan
    r = correlate(depth, proxy, n_boot=200)
    ok = np.isfinite(depth)
    assert r["spearman"] == pytest.approx(spearmanr(depth[ok], proxy[ok]).statistic)
    assert r["pearson"] == pytest.approx(pearsonr(depth[ok], proxy[ok]).statistic)
    assert r["spearman_ci"][0] < r["spearman"] < r["spearman_ci"][1] and r["n_tokens"] == 995
    rows = proxy_correlations({"ANIRA-E": depth}, {f: proxy for f in FEATURES}, n_boot=10)
    assert [r["proxy"] for r in rows] == list(FEATURES) and rows[0]["paper"] == 0.666
    with pytest.raises(ValueError, match="same"):
        correlate(depth, proxy[:, :10])


def test_generation_validity_checks_each_sampled_sentence():
    cfg = AniraConfig(vocab_size=5, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                      num_key_value_heads=2, max_depth=2, decider="early", pad_token_id=0)
    model = AniraForCausalLM(cfg)
    with torch.no_grad():  # uniform next-token distribution: short random strings, never valid
        model.lm_head.weight.zero_()
    sampler = PCFGSampler(load_pcfg("cfg3b"))
    out = generation_validity(model, [EOS], sampler.recognizes, n=3, max_new_tokens=5)
    assert out["validity"] == 0  # cfg3b sentences have at least 138 tokens
    assert out["n"] == 3 and 0 <= out["validity"] <= 1
    for s in out["samples"]:
        assert s["valid"] == (s["finished"] and sampler.recognizes(s["tokens"]))
        assert 0 not in s["tokens"]  # PAD is never sampled
