"""The moments' accumulation (vae_lab/probes/moments.py) against numpy's two-pass mean and variance, across
block boundaries and several parameters of a group. The statistics' meaning (variance, SNR) is tested in
test_grad_variance.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_lab.probes import moments
from vae_lab.probes.moments import gradient_moments


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(moments, "_BLOCK", 7)  # ragged blocks: 7 does not divide the sizes below


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mean_and_variance_match_numpy_over_blocks_and_parameters(small_blocks, dtype):
    gen = torch.Generator().manual_seed(0)
    # two groups, one of two parameters (sizes 3 x 5 and 4): 19 coordinates, blocks of 7
    shapes = {"a": [(3, 5), (4,)], "b": [(11,)]}
    params = {k: [torch.zeros(s, dtype=dtype, requires_grad=True) for s in v] for k, v in shapes.items()}
    offset = 1e4  # a large common mean: a one-pass sum of squares would lose the variance to cancellation
    drawn: dict[str, list[np.ndarray]] = {k: [] for k in shapes}

    def loss():
        total = torch.zeros((), dtype=dtype)
        for k, ps in params.items():
            draws = [torch.randn(p.shape, dtype=dtype, generator=gen) for p in ps]
            g = [offset + (1 + i) * t for i, t in enumerate(draws)]
            drawn[k].append(np.concatenate([t.double().numpy().ravel() for t in g]))
            total = total + sum((p * t).sum() for p, t in zip(ps, g, strict=True))
        return total

    n = 6
    out = gradient_moments(loss, params, n)
    for k in shapes:
        samples = np.stack(drawn[k])
        assert out[k].n == n
        np.testing.assert_allclose(out[k].mean.numpy(), samples.mean(0), rtol=1e-15, atol=0)
        # float64 values near 1e4 carry rounding of 1e4 * 2^-52 = 2e-12 each; 1e-9 allows for n updates
        np.testing.assert_allclose(out[k].var.numpy(), samples.var(0, ddof=1), rtol=1e-9, atol=1e-9)


def test_blocks_give_the_whole_vector_update_to_the_bit(monkeypatch):
    """The docstring's claim: the blocked update is the whole-vector Welford update, bit for bit."""
    g = torch.Generator().manual_seed(1)
    samples = [torch.randn(1000, generator=g, dtype=torch.float64) * 1e-3 + 0.5 for _ in range(5)]
    mean, m2 = samples[0].clone(), torch.zeros(1000, dtype=torch.float64)
    for m, x in enumerate(samples[1:], start=2):  # the update of the code before the blocks
        delta = x - mean
        mean += delta / m
        m2 += delta * (x - mean)
    monkeypatch.setattr(moments, "_BLOCK", 64)
    b_mean, b_m2 = torch.empty(1000, dtype=torch.float64), torch.zeros(1000, dtype=torch.float64)
    for m, x in enumerate(samples, start=1):
        moments._welford(b_mean, b_m2, x.clone(), m)
    assert torch.equal(b_mean, mean) and torch.equal(b_m2, m2)
    assert torch.equal(b_mean.signbit(), mean.signbit())  # down to the sign of a zero
    zero = torch.tensor([-0.0, 0.0], dtype=torch.float64)
    first = torch.empty(2, dtype=torch.float64)
    moments._welford(first, torch.zeros(2, dtype=torch.float64), zero.clone(), 1)
    assert torch.equal(first.signbit(), zero.signbit())
