"""The fused CPU Best-Fisher sampler (vae_lab.distributions.kernels, best_fisher.cpp): its random numbers
(Philox4x32-10 against Random123's known answers), goodness of fit against scipy.stats.vonmises, the ends
of the range in float32, reproducibility, and the switches around it (``VAE_LAB_FUSED=0``, dispatch).

Seeds are fixed. Goodness of fit is a Kolmogorov-Smirnov test at the 1e-3 level; moments are compared
within 4 standard errors. The kernel is compiled on first use (about a minute, then cached by torch).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats as st
import torch

from vae_lab.distributions import best_fisher, kernels
from vae_lab.distributions.angles import largest_below_pi
from vae_lab.distributions.rsvi import rsvi_sample
from vae_lab.distributions.von_mises import VonMises

DTYPES = [torch.float32, torch.float64]
KAPPAS = [1e-3, 0.1, 1.0, 10.0, 1e3, 1e5]
_LEVEL = 1e-3


@pytest.fixture(scope="module")
def module():
    """The compiled extension (the tests need it: this machine has a compiler)."""
    ext = kernels.load()
    assert ext is not None, "the fused kernels did not build"
    return ext


@pytest.fixture
def fused_on(monkeypatch, module):
    monkeypatch.delenv(kernels.ENV_FLAG, raising=False)
    return module


def _draw(kappa: torch.Tensor, seed: int) -> torch.Tensor:
    return best_fisher.sample_centred(kappa, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("portable", [False, True])
def test_philox_known_answers(module, portable):
    """Random123's kat_vectors, the three philox4x32 10 lines (counter, key -> output), for the AVX2 build
    (where the CPU has AVX2) and the portable one."""
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for counter, key, expected in cases:
        out = module.philox4x32(torch.tensor([counter], dtype=torch.int64), *key, portable)
        assert tuple(out[0].tolist()) == expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kappa", KAPPAS)
def test_goodness_of_fit(fused_on, dtype, kappa):
    """Kolmogorov-Smirnov against scipy's von Mises CDF, and E[cos x] = I1/I0 within 4 standard errors."""
    x = _draw(torch.full((20000,), kappa, dtype=dtype), seed=11).double().numpy()
    assert st.kstest(x, st.vonmises(kappa).cdf).pvalue > _LEVEL
    mean_resultant = scipy.special.i1e(kappa) / scipy.special.i0e(kappa)
    one_minus_cos = 2.0 * np.sin(0.5 * x) ** 2  # 1 - cos x without cancellation at large kappa
    se = one_minus_cos.std() / math.sqrt(x.size)
    assert abs(one_minus_cos.mean() - (1.0 - mean_resultant)) <= 4.0 * se


def test_mixed_concentrations_probability_integral_transform(fused_on):
    """A batch of concentrations log-uniform in [1e-6, 1e6]: the CDF of each sample at its own
    concentration is uniform (Kolmogorov-Smirnov)."""
    gen = torch.Generator().manual_seed(12)
    kappa = (
        torch.empty(20000, dtype=torch.float64).uniform_(math.log(1e-6), math.log(1e6), generator=gen).exp_()
    )
    x = best_fisher.sample_centred(kappa, gen).numpy()
    u = st.vonmises.cdf(x, kappa.numpy())
    assert st.kstest(u, "uniform").pvalue > _LEVEL


@pytest.mark.parametrize("kappa", [0.3, 2.0, 30.0])
def test_fused_and_eager_agree_in_distribution(monkeypatch, fused_on, kappa):
    """Two-sample Kolmogorov-Smirnov between the fused and the eager sampler, for the samples and for the
    accepted noise (RSVI's), in float32."""
    k = torch.full((20000,), kappa)
    fused_x = _draw(k, seed=13).numpy()
    fused_u = best_fisher.accepted_noise(k, torch.Generator().manual_seed(14)).numpy()
    monkeypatch.setenv(kernels.ENV_FLAG, "0")
    eager_x = _draw(k, seed=15).numpy()
    eager_u = best_fisher.accepted_noise(k, torch.Generator().manual_seed(16)).numpy()
    assert st.ks_2samp(fused_x, eager_x).pvalue > _LEVEL
    assert st.ks_2samp(fused_u, eager_u).pvalue > _LEVEL


def test_float32_samples_inside_pi(fused_on, module):
    """In float32 |x| never exceeds the largest float32 below pi (float32(pi) lies above pi): for large and
    infinite concentrations (finite, tiny samples) and small ones (|x| near pi); the clamp itself, with a
    smaller bound, holds samples to it."""
    top = largest_below_pi(torch.float32)
    large = torch.tensor([1e3, 1e6, 1e9, 1e15, 1e20, math.inf]).repeat_interleave(20000)
    x = _draw(large, seed=17)
    assert torch.isfinite(x).all() and (x.abs() <= top).all() and (x != 0).any()
    small = _draw(torch.full((1_000_000,), 1e-6), seed=18)
    assert (small.abs() <= top).all() and small.abs().max() > 3.14
    clamped = module.best_fisher(torch.full((20000,), 1e-3), 1, 2, False, 3.0)
    assert clamped.abs().max() == 3.0 and (clamped.abs() == 3.0).sum() > 100


def test_same_seed_same_samples(fused_on):
    """torch.manual_seed and a generator reproduce the samples; a new draw and another seed do not."""
    kappa = torch.logspace(-3, 3, 5000)
    torch.manual_seed(19)
    first, second = best_fisher.sample_centred(kappa), best_fisher.sample_centred(kappa)
    torch.manual_seed(19)
    assert torch.equal(best_fisher.sample_centred(kappa), first)
    assert not torch.equal(first, second)
    assert torch.equal(_draw(kappa, 20), _draw(kappa, 20)) and not torch.equal(
        _draw(kappa, 20), _draw(kappa, 21)
    )
    q = VonMises(torch.zeros(5000), kappa)
    torch.manual_seed(22)
    z = q.rsample()
    torch.manual_seed(22)
    assert torch.equal(q.rsample(), z)


def test_independent_of_threads_and_dtype(fused_on):
    """Every element owns its stream and the arithmetic is double: the samples depend on neither the thread
    count nor the chunking, and the float32 samples are the float64 ones (same concentrations) rounded."""
    kappa = torch.logspace(-6, 8, 100_003)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _draw(kappa, 23)
        torch.set_num_threads(2)
        two = _draw(kappa, 23)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    assert torch.equal(one, _draw(kappa.double(), 23).float())
    assert torch.equal(_draw(kappa[:2000], 23), one[:2000])  # a prefix: the same element streams


def test_env_switch_and_dispatch(monkeypatch, fused_on):
    """VAE_LAB_FUSED=0 (read at every call) gives the eager code, as does a tensor the kernel does not take
    (float16 is sampled in float32, by the kernel); the fused stream differs from the eager one, also for a
    VAE-sized batch."""
    kappa = torch.logspace(-2, 2, 3000)
    fused = _draw(kappa, 24)
    monkeypatch.setenv(kernels.ENV_FLAG, "0")
    assert kernels.best_fisher_draw(kappa, 3.0) is None
    eager = _draw(kappa, 24)
    monkeypatch.delenv(kernels.ENV_FLAG)
    monkeypatch.setattr(kernels, "best_fisher_draw", lambda *args, **kwargs: None)
    assert torch.equal(_draw(kappa, 24), eager) and not torch.equal(eager, fused)
    small_eager = _draw(kappa[:200], 24)
    monkeypatch.undo()
    assert not torch.equal(_draw(kappa[:200], 24), small_eager)  # 200 elements go to the kernel too
    monkeypatch.delenv(kernels.ENV_FLAG, raising=False)
    assert kernels.best_fisher_draw(kappa.half(), 3.0) is None
    assert torch.equal(_draw(kappa.half(), 24), _draw(kappa.half().float(), 24).half())


def test_rsvi_noise_matches_the_implicit_sample(fused_on):
    """RSVI's fused noise, pushed through its closed-form path, is the fused implicit sample (one stream)."""
    kappa = torch.logspace(-3, 3, 2000, dtype=torch.float64)
    x = _draw(kappa, 25)
    z = rsvi_sample(
        VonMises(torch.zeros_like(kappa), kappa), (), generator=torch.Generator().manual_seed(25)
    ).z
    torch.testing.assert_close(z, x, rtol=1e-12, atol=1e-15)


def test_invalid_concentrations_give_nan(fused_on):
    """NaN and negative concentrations give NaN at once (the eager rejection loop would not end); zero
    gives the uniform distribution."""
    kappa = torch.ones(2000, dtype=torch.float64)
    kappa[:2] = torch.tensor([math.nan, -1.0])
    x = _draw(kappa, 26)
    assert x[:2].isnan().all() and x[2:].isfinite().all()
    uniform = _draw(torch.zeros(20000, dtype=torch.float64), 27).numpy()
    assert st.kstest(uniform, st.uniform(-math.pi, 2 * math.pi).cdf).pvalue > _LEVEL
