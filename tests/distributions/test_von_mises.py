"""vae_lab.distributions.von_mises: implicit gradients' unbiasedness, Best-Fisher sampler, densities.

References are independent of the code under test: closed-form expectations for the gradients'
unbiasedness, goodness-of-fit tests for the sampler, scipy.stats.vonmises for the densities. Seeds are
fixed; statistical tolerances are 4 standard errors of the estimate. The CDF and dz/dkappa against scipy
and mpmath are in test_von_mises_cdf.py.
"""

from __future__ import annotations

import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
import scipy.special
import scipy.stats as st
import torch

from vae_lab.distributions.von_mises import VonMises
from vae_lab.distributions.von_mises_cdf import von_mises_dz_dconcentration

DTYPES = [torch.float32, torch.float64]


def _bessel_ratio(kappa: np.ndarray | float) -> np.ndarray:
    return scipy.special.i1e(kappa) / scipy.special.i0e(kappa)


# ---------------------------------------------------------------------------------------------------------
# Unbiasedness of the gradients: d/dkappa E[cos z] = A'(kappa), d/dloc E[cos z] = -A sin(loc)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kappa_value", [0.3, 5.0, 30.0, 200.0])
def test_implicit_gradient_unbiased(dtype, kappa_value):
    """E[cos(z)] = A(kappa) cos(loc): per-sample gradients averaged against the closed-form derivatives
    A' = 1 - A/kappa - A^2 and -A sin(loc), within 4 standard errors."""
    torch.manual_seed(11)
    n = 100_000
    loc0 = 0.7
    kappa = torch.full((n,), kappa_value, dtype=dtype, requires_grad=True)
    loc = torch.full((n,), loc0, dtype=dtype, requires_grad=True)
    torch.cos(VonMises(loc, kappa).rsample()).sum().backward()
    a = float(_bessel_ratio(kappa_value))
    for grads, exact in (
        (kappa.grad, (1 - a / kappa_value - a * a) * math.cos(loc0)),
        (loc.grad, -a * math.sin(loc0)),
    ):
        g = grads.double()
        se = g.std().item() / math.sqrt(n)
        assert abs(g.mean().item() - exact) < 4 * se + 1e-12, (g.mean().item(), exact, se)


def test_rsample_broadcast_gradients_sum_to_size():
    """loc (3, 1) and concentration (1, 4) broadcast to (3, 4); rsample((5,)) is (5, 3, 4); the gradients
    come back in the parameters' own shapes, summed over the broadcast dimensions."""
    loc = torch.tensor([[0.1], [2.0], [-3.0]], dtype=torch.float64, requires_grad=True)
    kappa = torch.tensor([[0.5, 4.0, 20.0, 100.0]], dtype=torch.float64, requires_grad=True)
    q = VonMises(loc, kappa)
    torch.manual_seed(5)
    z = q.rsample((5,))
    assert z.shape == (5, 3, 4)
    weights = torch.randn(5, 3, 4, dtype=torch.float64)
    (z * weights).sum().backward()
    assert loc.grad.shape == (3, 1) and kappa.grad.shape == (1, 4)
    torch.testing.assert_close(loc.grad, weights.sum(dim=(0, 2)).view(3, 1))
    x = torch.remainder(z.detach() - loc.detach() + math.pi, 2 * math.pi) - math.pi
    dz = von_mises_dz_dconcentration(x, kappa.detach().expand(5, 3, 4))
    torch.testing.assert_close(kappa.grad, (weights * dz).sum(dim=(0, 1)).view(1, 4))


# ---------------------------------------------------------------------------------------------------------
# (c) goodness of fit of sample() and rsample()
# ---------------------------------------------------------------------------------------------------------

GOF_KAPPAS = [1e-6, 1e-3, 0.1, 1.0, 10.0, 1e3, 1e6]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["sample", "rsample"])
@pytest.mark.parametrize("kappa_value", GOF_KAPPAS)
def test_goodness_of_fit(kappa_value, method, dtype):
    """Criterion (c): Kolmogorov-Smirnov with 1e5 samples, p > 1e-3 (fixed seed).

    Reference: scipy.stats.vonmises.cdf (accurate to < 3e-6 everywhere, far below the KS resolution
    ~ 1/sqrt(1e5) = 3e-3). For kappa = 1e6 the standardized z sqrt(kappa) is compared to N(0, 1) instead:
    the von Mises CDF differs from that normal's by O(1/kappa) = 1e-6, again invisible to the test, and
    the comparison does not lean on scipy's large-kappa branch.
    """
    torch.manual_seed(2024)
    q = VonMises(torch.zeros((), dtype=dtype), torch.tensor(kappa_value, dtype=dtype))
    if method == "rsample":
        q = VonMises(torch.zeros((), dtype=dtype), torch.tensor(kappa_value, dtype=dtype).requires_grad_())
    z = getattr(q, method)((100_000,))
    assert z.dtype == dtype
    zs = z.detach().double().numpy()
    if kappa_value >= 1e6:
        p_value = st.kstest(zs * math.sqrt(kappa_value), "norm").pvalue
    else:
        p_value = st.kstest(zs, lambda v: st.vonmises.cdf(v, kappa_value)).pvalue
    assert p_value > 1e-3


@pytest.mark.parametrize("kappa_value", [0.05, 2.0, 50.0])
def test_goodness_of_fit_small_batches(kappa_value):
    """Small batches take the sampler's multi-candidate rounds (up to 8 proposals per entry and round):
    200 batches of 500 samples, pooled, KS p > 1e-3."""
    torch.manual_seed(8)
    q = VonMises(torch.zeros(500, dtype=torch.float64), torch.full((500,), kappa_value, dtype=torch.float64))
    z = torch.cat([q.sample() for _ in range(200)]).numpy()
    assert st.kstest(z, lambda v: st.vonmises.cdf(v, kappa_value)).pvalue > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
def test_wrapped_samples_with_loc(dtype):
    """With loc near pi the samples wrap: they stay in [-pi, pi), and z - loc (wrapped) is vM(0, kappa)."""
    torch.manual_seed(99)
    loc = 3.0
    q = VonMises(torch.tensor(loc, dtype=dtype), torch.tensor(2.0, dtype=dtype))
    z = q.sample((100_000,))
    assert z.min().item() >= -math.pi and z.max().item() < math.pi
    assert (z < 0).float().mean().item() > 0.1  # wrapping did happen
    centred = np.remainder(z.double().numpy() - loc + np.pi, 2 * np.pi) - np.pi
    assert st.kstest(centred, lambda v: st.vonmises.cdf(v, 2.0)).pvalue > 1e-3


# ---------------------------------------------------------------------------------------------------------
# (e) finite samples and gradients over the whole range of concentrations
# ---------------------------------------------------------------------------------------------------------

RANGE_KAPPAS = [1e-6, 1e-4, 1e-2, 0.5, 1.0, 10.4, 10.6, 49.0, 51.0, 1e2, 1e4, 1e6]


@pytest.mark.parametrize("dtype", DTYPES)
def test_finite_samples_and_gradients(dtype):
    """Criterion (e): finite samples in [-pi, pi) and finite gradients for loc and concentration,
    kappa from 1e-6 to 1e6, float32 and float64, with locs far from 0."""
    torch.manual_seed(0)
    kappa = torch.tensor(RANGE_KAPPAS, dtype=dtype).repeat_interleave(3)
    kappa.requires_grad_()
    loc = torch.tensor([0.0, 3.1, -250.0], dtype=dtype).repeat(len(RANGE_KAPPAS)).requires_grad_()
    q = VonMises(loc, kappa)
    z = q.rsample((5000,))
    assert torch.isfinite(z).all()
    assert z.min().item() >= -math.pi and z.max().item() < math.pi
    (torch.sin(z) + z**2).sum().backward()
    assert torch.isfinite(kappa.grad).all() and torch.isfinite(loc.grad).all()
    s = q.sample((5000,))
    assert torch.isfinite(s).all() and s.dtype == dtype
    for values in (q.log_prob(z), q.entropy(), q.variance, q.cdf(z)):
        assert torch.isfinite(values).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_beyond_the_range(dtype):
    """Outside the required range too (kappa 1e-30 and 1e12): finite samples and gradients; empty shapes."""
    kappa = torch.tensor([1e-30, 1e-20, 1e-12, 1e10, 1e12], dtype=dtype, requires_grad=True)
    loc = torch.zeros(5, dtype=dtype, requires_grad=True)
    z = VonMises(loc, kappa).rsample((1000,))
    torch.sin(z).sum().backward()
    assert torch.isfinite(z).all() and torch.isfinite(kappa.grad).all() and torch.isfinite(loc.grad).all()
    assert VonMises(loc, kappa).rsample((0,)).shape == (0, 5)
    empty = torch.empty(0, dtype=dtype)
    assert von_mises_dz_dconcentration(empty, empty).shape == (0,)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_spread_at_extreme_concentrations(dtype):
    """Extreme kappas: the standardized spread of the samples is right (no collapse to 0 or to a grid)."""
    torch.manual_seed(4)
    for kappa_value in (1e4, 1e6):
        z = VonMises(torch.zeros((), dtype=dtype), torch.tensor(kappa_value, dtype=dtype)).sample((100_000,))
        std = z.double().std().item() * math.sqrt(kappa_value)
        assert abs(std - 1.0) < 4 * (1 / math.sqrt(2 * 100_000)) + 1e-3
        assert z.unique().numel() > 99_000
    z = VonMises(torch.zeros((), dtype=dtype), torch.tensor(1e-6, dtype=dtype)).sample((100_000,))
    assert abs(z.double().var().item() - math.pi**2 / 3) < 4 * math.sqrt(4 / 45 * math.pi**4 / 100_000)


# ---------------------------------------------------------------------------------------------------------
# Density, entropy, moments, interface
# ---------------------------------------------------------------------------------------------------------


def test_log_prob_matches_scipy():
    kappa = np.logspace(-6, 6, 25)
    x = np.linspace(-np.pi, np.pi, 50, endpoint=False)
    kk, xx = np.meshgrid(kappa, x, indexing="ij")
    q = VonMises(torch.tensor(0.4, dtype=torch.float64), torch.tensor(kk))
    ours = q.log_prob(torch.tensor(xx) + 0.4).numpy()
    ref = st.vonmises.logpdf(xx, kk)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-9)
    q32 = VonMises(torch.tensor(0.4), torch.tensor(kk, dtype=torch.float32))
    ours32 = q32.log_prob(torch.tensor(xx, dtype=torch.float32) + 0.4).double().numpy()
    near = np.abs(xx) < 5 / np.sqrt(kk) + 0.1  # where float32 angles resolve the density
    np.testing.assert_allclose(ours32[near], ref[near], rtol=1e-4, atol=1e-4)


def test_entropy_matches_scipy():
    kappa = np.logspace(-4, 6, 41)
    ours = VonMises(torch.zeros((), dtype=torch.float64), torch.tensor(kappa)).entropy().numpy()
    np.testing.assert_allclose(ours, st.vonmises.entropy(kappa), rtol=1e-10, atol=1e-12)
    ours32 = VonMises(torch.zeros(()), torch.tensor(kappa, dtype=torch.float32)).entropy().double().numpy()
    np.testing.assert_allclose(ours32, st.vonmises.entropy(kappa), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kappa_value", [1e-3, 0.5, 5.0, 50.0, 5e3])
def test_entropy_and_variance_monte_carlo(kappa_value):
    """H = -E[log q(z)] and circular variance 1 - E[cos(z - loc)], within 4 standard errors."""
    torch.manual_seed(21)
    q = VonMises(torch.tensor(-1.0, dtype=torch.float64), torch.tensor(kappa_value, dtype=torch.float64))
    z = q.sample((100_000,))
    neg_log_q = -q.log_prob(z)
    se = neg_log_q.std().item() / math.sqrt(z.numel())
    assert abs(neg_log_q.mean().item() - q.entropy().item()) < 4 * se
    c = 1 - torch.cos(z + 1.0)
    assert abs(c.mean().item() - q.variance.item()) < 4 * c.std().item() / math.sqrt(z.numel())
    with mpmath.workdps(30):
        exact = 1 - mpmath.besseli(1, kappa_value) / mpmath.besseli(0, kappa_value)
    np.testing.assert_allclose(q.variance.item(), float(exact), rtol=1e-13)


def test_entropy_gradient_finite_differences():
    kappa = torch.tensor(
        [1e-3, 0.3, 5.0, 10.4, 10.6, 49.0, 51.0, 400.0, 1e5], dtype=torch.float64, requires_grad=True
    )
    assert torch.autograd.gradcheck(
        lambda k: VonMises(torch.zeros((), dtype=torch.float64), k).entropy(), (kappa,)
    )


def test_interface():
    loc = torch.zeros(2, 3)
    kappa = torch.ones(2, 3)
    q = VonMises(loc, kappa)
    assert isinstance(q, torch.distributions.VonMises)
    assert q.has_rsample and q.batch_shape == (2, 3) and q.event_shape == ()
    e = q.expand((4, 2, 3))
    assert type(e) is VonMises and e.batch_shape == (4, 2, 3) and e.rsample().shape == (4, 2, 3)
    assert q.rsample((7,)).shape == (7, 2, 3) and q.sample().shape == (2, 3)
    torch.testing.assert_close(q.mean, loc)
    assert not q.sample().requires_grad
    with pytest.raises(ValueError):
        VonMises(torch.zeros(2), torch.tensor([1.0, -1.0]), validate_args=True)


def test_reproducible_with_manual_seed():
    q = VonMises(torch.zeros(1000), torch.logspace(-3, 3, 1000))
    torch.manual_seed(42)
    a = q.sample((3,))
    torch.manual_seed(42)
    b = q.rsample((3,))
    torch.manual_seed(42)
    c = q.sample((3,))
    assert torch.equal(a, b) and torch.equal(a, c)


def test_module_imports_on_its_own():
    code = (
        "import vae_lab.distributions.von_mises as m, torch; "
        "print(m.VonMises(torch.zeros(2), torch.ones(2)).rsample().shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch.Size([2])" in out.stdout
