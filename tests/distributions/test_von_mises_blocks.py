"""The blocked CPU paths of the von Mises sampler and of dz/dkappa's eager code (taken on one CPU thread), and
the ends of wrap_angle's range in float32.

The blocks are made small here so that a few thousand elements cross many block boundaries; the results
must match the unblocked evaluation (dz/dkappa) or the distribution (the sampler).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch

from vae_lab.distributions import best_fisher, von_mises_cdf
from vae_lab.distributions.angles import wrap_angle


def _blocks_of(module, monkeypatch, size: int | None) -> None:
    """Blocks of ``size`` elements in ``module`` (None: no blocks), whatever the thread count."""
    monkeypatch.setattr(module, "cpu_block_size", lambda like, n, block: max(n, 1) if size is None else size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dz_dconcentration_blocked_matches_unblocked(monkeypatch, dtype):
    monkeypatch.setenv("VAE_LAB_FUSED", "0")  # the eager code (the fused kernel has no blocks)
    gen = torch.Generator().manual_seed(0)
    kappa = torch.empty(20000, dtype=dtype).uniform_(math.log(1e-3), math.log(1e3), generator=gen).exp_()
    kappa[:3000] = 2.0  # one group of equal concentrations, as in the benchmark
    x = best_fisher.sample_centred(kappa, gen)
    _blocks_of(von_mises_cdf, monkeypatch, None)
    whole = von_mises_cdf.von_mises_dz_dconcentration(x, kappa)
    _blocks_of(von_mises_cdf, monkeypatch, 1000)
    blocked = von_mises_cdf.von_mises_dz_dconcentration(x, kappa)
    torch.testing.assert_close(blocked, whole, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0.0)


@pytest.mark.parametrize("kappa_value", [0.3, 2.0, 30.0])
def test_blocked_sampler_goodness_of_fit(monkeypatch, kappa_value):
    """Blocks of 1000 in the first round (rejected entries gathered across blocks): Kolmogorov-Smirnov
    against scipy's von Mises CDF. The eager sampler: 20,000 draws would otherwise go to the fused one."""
    monkeypatch.setenv("VAE_LAB_FUSED", "0")
    _blocks_of(best_fisher, monkeypatch, 1000)
    kappa = torch.full((20000,), kappa_value)
    x = best_fisher.sample_centred(kappa, torch.Generator().manual_seed(3)).double().numpy()
    assert np.abs(x).max() < math.pi
    assert st.kstest(x, st.vonmises(kappa_value).cdf).pvalue > 1e-3


def test_wrap_angle_float32_ends():
    """float32(pi) lies above pi and -float32(pi) below -pi: both are moved inside [-pi, pi)."""
    pi32 = torch.tensor(math.pi, dtype=torch.float32)
    for value in (pi32, -pi32, pi32 * 3, torch.nextafter(pi32, torch.tensor(0.0))):
        y = wrap_angle(value.reshape(1)).double()
        assert -math.pi <= y.item() < math.pi
