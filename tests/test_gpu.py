"""On a CUDA device (skipped elsewhere): the cache contract in float32 on the device's own kernels,
and bf16 decoding within the suite's tolerance. `benchmarks/gpu_suite.py` reports the same numbers."""

import pytest
import torch

from anira_lib.evaluation.savings import cached_decoding_error, random_adaptive_model

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("decider", ["early", "online"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.bfloat16, 5e-2)])
def test_cached_decoding_equals_the_full_forward_on_the_device(decider, dtype, tol):
    model = random_adaptive_model(decider, 256, 1024, 8, 6).to(device="cuda", dtype=dtype)
    ids = torch.randint(1, 64, (4, 48), generator=torch.Generator().manual_seed(3)).cuda()
    r = cached_decoding_error(model, ids, 24)
    assert r["max_abs_logit_diff"] <= tol
    if dtype == torch.float32:
        assert r["depths_identical"]
