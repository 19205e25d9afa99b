"""vae_lab.distributions.circular_uniform: the uniform distribution on [-pi, pi)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch

from vae_lab.distributions.circular_uniform import CircularUniform


def test_shapes_dtype_device():
    p = CircularUniform((2, 3), dtype=torch.float64)
    assert p.batch_shape == (2, 3) and p.event_shape == ()
    z = p.sample((5,))
    assert z.shape == (5, 2, 3) and z.dtype == torch.float64 and z.device.type == "cpu"
    assert (
        CircularUniform().sample().shape == ()
        and CircularUniform().sample().dtype == torch.get_default_dtype()
    )
    assert p.entropy().shape == (2, 3) and p.mean.shape == (2, 3) and p.variance.shape == (2, 3)
    with pytest.raises(ValueError):
        CircularUniform((2,), dtype=torch.int64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_samples_uniform_in_support(dtype):
    torch.manual_seed(0)
    z = CircularUniform((100_000,), dtype=dtype).sample()
    assert z.min().item() >= -math.pi and z.max().item() < math.pi
    assert CircularUniform.support.check(z).all()
    assert st.kstest(z.double().numpy(), st.uniform(loc=-math.pi, scale=2 * math.pi).cdf).pvalue > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_largest_uniform_stays_below_pi(dtype):
    """torch.rand's largest value, 1 - 2^-24 (float32) / 1 - 2^-53 (float64), must not round up to pi."""
    u_max = 1.0 - torch.finfo(dtype).eps / 2
    z = (torch.tensor(u_max, dtype=dtype) - 0.5) * (2 * math.pi)
    assert z.item() < math.pi and bool(z < math.pi)


def test_log_prob_entropy_cdf():
    p = CircularUniform((3,), dtype=torch.float64)
    value = torch.tensor([-math.pi, 0.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(
        p.log_prob(value), torch.full((3,), -math.log(2 * math.pi), dtype=torch.float64)
    )
    unchecked = CircularUniform((3,), dtype=torch.float64, validate_args=False)
    outside = unchecked.log_prob(torch.tensor([math.pi, -4.0, 10.0], dtype=torch.float64))
    assert torch.isinf(outside).all() and (outside < 0).all()
    torch.testing.assert_close(p.entropy(), torch.full((3,), math.log(2 * math.pi), dtype=torch.float64))
    torch.testing.assert_close(p.cdf(value), (value + math.pi) / (2 * math.pi))
    torch.testing.assert_close(p.icdf(p.cdf(value)), value)
    with pytest.raises(ValueError):
        CircularUniform((3,), validate_args=True).log_prob(torch.tensor([0.0, 4.0, 0.0]))


def test_moments_monte_carlo():
    """mean 0 and variance pi^2/3 (of the interval), within 4 standard errors; entropy = -E[log p]."""
    torch.manual_seed(1)
    p = CircularUniform(dtype=torch.float64)
    z = p.sample((200_000,))
    n = z.numel()
    assert abs(z.mean().item() - p.mean.item()) < 4 * z.std().item() / math.sqrt(n)
    sq = z**2
    assert abs(sq.mean().item() - p.variance.item()) < 4 * sq.std().item() / math.sqrt(n)
    np.testing.assert_allclose(p.variance.item(), math.pi**2 / 3)
    np.testing.assert_allclose(-p.log_prob(z).mean().item(), p.entropy().item())


def test_expand_and_rsample():
    p = CircularUniform((3,), dtype=torch.float64)
    e = p.expand((4, 3))
    assert type(e) is CircularUniform and e.batch_shape == (4, 3) and e.dtype == torch.float64
    assert e.sample().shape == (4, 3)
    assert p.has_rsample and not p.rsample().requires_grad
    torch.manual_seed(3)
    a = p.rsample((2,))
    torch.manual_seed(3)
    assert torch.equal(a, p.sample((2,)))
