"""vae_lab.distributions.{log_space, gamma, dirichlet, beta}: log-space Gamma variates and their families.

References: mpmath (40 digits) for the implicit derivative d log z / d alpha, scipy for the CDFs and
densities; goodness of fit of log z by Kolmogorov-Smirnov with fixed seeds.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st
import torch

from vae_lab.distributions import Beta, Dirichlet, Gamma, log1m_of, log_of
from vae_lab.distributions.log_space import _dlog_z_dalpha

N = 100_000
P_MIN = 1e-3
DTYPES = [torch.float32, torch.float64]


def _mpmath_dlog_z_dalpha(alpha: float, log_z: float) -> float:
    """-(dF/dalpha)(z) / (z q(z)) for Gamma(alpha, 1), F the regularized lower incomplete gamma."""
    with mpmath.workdps(40):
        a, z = mpmath.mpf(alpha), mpmath.exp(mpmath.mpf(log_z))
        d_f = mpmath.diff(lambda s: mpmath.gammainc(s, 0, z, regularized=True), a)
        z_q = mpmath.exp(a * mpmath.log(z) - z - mpmath.loggamma(a))
        return float(-d_f / z_q)


@pytest.mark.parametrize("alpha", [1e-3, 0.05, 0.5, 3.0])
def test_series_derivative_matches_mpmath(alpha):
    """Below log z = -18 the derivative is the incomplete-gamma series: exact to 1e-12 relative."""
    log_z = torch.tensor([-1000.0, -300.0, -100.0, -40.0, -18.5], dtype=torch.float64)
    got = _dlog_z_dalpha(log_z, torch.full_like(log_z, alpha))
    ref = torch.tensor([_mpmath_dlog_z_dalpha(alpha, float(t)) for t in log_z], dtype=torch.float64)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)


def _log_gamma_cdf(alpha: float):
    """P(log Z <= t) for Z ~ Gamma(alpha, 1): gammainc(alpha, e^t), or z^alpha / Gamma(alpha + 1) where e^t
    underflows (relative error O(z))."""

    def cdf(t):
        t = np.asarray(t, dtype=np.float64)
        tiny = t < -600.0
        direct = sp.gammainc(alpha, np.exp(np.where(tiny, 0.0, t)))
        return np.where(tiny, np.exp(np.minimum(alpha * t - sp.gammaln(alpha + 1.0), 0.0)), direct)

    return cdf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1e-3, 0.05, 2.0, 1e3])
def test_gamma_log_samples_goodness_of_fit(alpha, dtype):
    """log z follows the law of the log of a Gamma variate, also where z underflows (alpha = 1e-3: ~92% of
    float32 draws are below the smallest normal number)."""
    torch.manual_seed(0)
    q = Gamma(torch.tensor(alpha, dtype=dtype), torch.tensor(1.0, dtype=dtype))
    z = q.sample((N,))
    assert z.dtype == dtype and (z > 0).all()
    log_z = log_of(z)
    assert torch.isfinite(log_z).all()
    assert st.kstest(log_z.double().numpy(), _log_gamma_cdf(alpha)).pvalue > P_MIN


@pytest.mark.parametrize("dtype", DTYPES)
def test_gamma_log_prob_reads_the_exact_log(dtype):
    torch.manual_seed(0)
    alpha, rate = torch.tensor(1e-3, dtype=dtype), torch.tensor(2.0, dtype=dtype)
    q = Gamma(alpha, rate)
    z = q.sample((1000,))
    lz = log_of(z).double().numpy()
    expected = st.gamma(1e-3, scale=0.5).logpdf(1.0)  # shape check of the formula at a plain point
    assert q.log_prob(torch.tensor(1.0, dtype=dtype)).item() == pytest.approx(expected, rel=1e-5)
    # at its own samples: (alpha - 1) log z + alpha log rate - rate z - lgamma(alpha), with the exact log z
    ref = (1e-3 - 1.0) * lz + 1e-3 * math.log(2.0) - 2.0 * np.exp(lz) - sp.gammaln(1e-3)
    np.testing.assert_allclose(
        q.log_prob(z).double().numpy(), ref, rtol=1e-5 if dtype == torch.float32 else 1e-12
    )
    if dtype == torch.float32:  # a copy of the sample is a new tensor: log of the clamped value
        assert (log_of(z.clone()) > log_of(z)).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_dirichlet_marginals_and_logs(dtype):
    torch.manual_seed(0)
    alpha = (0.3, 1.5, 4.0)
    z = Dirichlet(torch.tensor(alpha, dtype=dtype)).sample((N,))
    torch.testing.assert_close(z.sum(-1), torch.ones(N, dtype=dtype))
    total = sum(alpha)
    for i, a in enumerate(alpha):
        assert st.kstest(z[:, i].double().numpy(), st.beta(a, total - a).cdf).pvalue > P_MIN, i
    torch.testing.assert_close(log_of(z).exp(), z, rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dirichlet_tiny_concentrations_in_log_space(dtype):
    """alpha = 1e-3: most components underflow in float32; their logs stay finite and normalized
    (log-sum-exp 0), and log_prob at the sample is the density's formula at those logs."""
    torch.manual_seed(0)
    q = Dirichlet(torch.full((3,), 1e-3, dtype=dtype))
    z = q.sample((N,))
    log_z = log_of(z)
    assert torch.isfinite(log_z).all() and (log_z < -87.0).float().mean() > 0.5
    torch.testing.assert_close(log_z.logsumexp(-1), torch.zeros(N, dtype=dtype), rtol=0, atol=1e-5)
    lp = q.log_prob(z)
    assert torch.isfinite(lp).all()
    ref = ((1e-3 - 1.0) * log_z.double()).sum(-1) + sp.gammaln(3e-3) - 3 * sp.gammaln(1e-3)
    torch.testing.assert_close(lp.double(), ref, rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_beta_goodness_of_fit_and_logs(dtype):
    torch.manual_seed(0)
    q = Beta(torch.tensor(0.7, dtype=dtype), torch.tensor(2.5, dtype=dtype))
    z = q.sample((N,))
    assert st.kstest(z.double().numpy(), st.beta(0.7, 2.5).cdf).pvalue > P_MIN
    torch.testing.assert_close(log_of(z).exp(), z, rtol=1e-5, atol=0)
    torch.testing.assert_close(log1m_of(z).exp(), 1 - z, rtol=1e-4, atol=1e-6)
    ref = st.beta(0.7, 2.5).logpdf(z.double().numpy())
    np.testing.assert_allclose(q.log_prob(z).double().numpy(), ref, rtol=1e-4, atol=1e-4)


def test_rsample_gradients_flow_and_kl_registry():
    alpha = torch.tensor([0.5, 2.0], requires_grad=True)
    rate = torch.tensor([1.0, 3.0], requires_grad=True)
    z = Gamma(alpha, rate).rsample((7,))
    (log_of(z) + z).sum().backward()
    assert torch.isfinite(alpha.grad).all() and torch.isfinite(rate.grad).all()
    kl = torch.distributions.kl_divergence(Gamma(alpha, rate), Gamma(torch.tensor(0.3), torch.tensor(0.3)))
    assert kl.shape == (2,) and torch.isfinite(kl).all()
