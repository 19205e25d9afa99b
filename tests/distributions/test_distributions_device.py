"""Every tensor the families, samplers, CDFs and KLs make follows the device and dtype of their inputs.

Run under :func:`device_trap.defaults_elsewhere`: torch's default device is ``meta`` and its default
dtype the other precision, so a tensor made from the defaults instead of from the inputs raises
``DeviceLeak`` (naming the line) or leaves an output of the wrong dtype. Concentrations span every branch:
the series and normal-approximation CDFs (switch 10.5 in float32, 50 in float64), the float64 far-tail
refinement of dz/dkappa in float32, the log-space Gamma series below log z = -18, RSVI with and without
shape augmentation.
"""

from __future__ import annotations

import pytest
import torch
from device_trap import assert_follows, defaults_elsewhere
from torch.distributions import Independent, kl_divergence

from vae_lab.distributions import Beta, CircularUniform, Dirichlet, Gamma, VonMises
from vae_lab.distributions.angles import wrap_angle
from vae_lab.distributions.bessel import log_i0e, one_minus_bessel_ratio
from vae_lab.distributions.rsvi import rsvi_sample
from vae_lab.distributions.von_mises_cdf import von_mises_cdf, von_mises_dz_dconcentration

DTYPES = [torch.float32, torch.float64]
KAPPAS = [1e-6, 1e-3, 0.7, 3.0, 9.0, 20.0, 60.0, 1e3, 1e6]


def _leaf(values, dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype).requires_grad_()


def _grads(out: torch.Tensor, *leaves: torch.Tensor) -> dict[str, torch.Tensor]:
    grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
    return {f"grad[{i}]": g for i, g in enumerate(grads)}


@pytest.mark.parametrize("dtype", DTYPES)
def test_von_mises_follows_its_parameters(dtype):
    torch.manual_seed(0)
    loc, kappa = _leaf([0.3] * len(KAPPAS), dtype), _leaf(KAPPAS, dtype)
    with defaults_elsewhere(dtype):
        q = VonMises(loc, kappa)
        z = q.rsample((400,))
        out = {
            "rsample": z,
            "sample": q.sample((3,)),
            "log_prob": q.log_prob(z),
            "cdf": q.cdf(z),
            "entropy": q.entropy(),
            "variance": q.variance,
            "mean": q.mean,
        }
        out.update(_grads(torch.cos(z) + q.log_prob(z.detach()) + q.entropy(), loc, kappa))
    assert_follows(out, dtype)
    assert all(g is not None for k, g in out.items() if k.startswith("grad"))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dz_dkappa_and_cdf_follow_their_inputs_on_every_branch(dtype, fused, monkeypatch):
    """Grid of x out to the far tails at each concentration: the series groups, the normal approximation
    and (float32, 2 <= kappa < 50, beyond 3.5 sd) the float64 re-evaluation all run (the eager code, what
    a GPU runs; on a CPU the fused kernel, unless VAE_LAB_FUSED=0)."""
    if not fused:
        monkeypatch.setenv("VAE_LAB_FUSED", "0")
    kappa = torch.tensor(KAPPAS, dtype=dtype).repeat_interleave(9)
    x = torch.linspace(-3.1, 3.1, 9, dtype=dtype).repeat(len(KAPPAS))
    x = torch.where(kappa > 10, x / kappa.sqrt(), x)  # many standard deviations, not beyond pi
    k_leaf, x_leaf = kappa.clone().requires_grad_(), x.clone().requires_grad_()
    with defaults_elsewhere(dtype):
        out = {"dz_dkappa": von_mises_dz_dconcentration(x, kappa), "cdf": von_mises_cdf(x_leaf, k_leaf)}
        out.update(_grads(out["cdf"], x_leaf, k_leaf))
        out["log_i0e"] = log_i0e(k_leaf)
        out["1-A"] = one_minus_bessel_ratio(k_leaf)
        out.update({f"d log_i0e {k}": v for k, v in _grads(out["log_i0e"] + out["1-A"], k_leaf).items()})
        out["wrap"] = wrap_angle(x * 7.0)
    assert_follows(out, dtype)
    assert torch.isfinite(out["dz_dkappa"]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_kls_and_circular_uniform_follow_the_parameters(dtype):
    loc, kappa = _leaf([0.3, -2.0, 1.0], dtype), _leaf([1e-3, 5.0, 1e4], dtype)
    with defaults_elsewhere(dtype):
        q = VonMises(loc, kappa)
        p = CircularUniform((3,), dtype=dtype, device=loc.device)
        out = {
            "kl_uniform": kl_divergence(q, p),
            "kl_vm": kl_divergence(q, VonMises(loc.detach().flip(0), kappa.detach().flip(0))),
            "p.sample": p.sample((4,)),
            "p.log_prob": p.log_prob(loc),
            "p.cdf": p.cdf(loc),
            "p.icdf": p.icdf(torch.rand(3, dtype=dtype, device=loc.device)),
            "p.entropy": p.entropy(),
            "p.mean": p.mean,
            "p.variance": p.variance,
        }
        out.update(_grads(out["kl_uniform"] + out["kl_vm"], loc, kappa))
    assert_follows(out, dtype)


def test_circular_uniform_defaults_to_torchs_default_device_and_dtype():
    """Without ``device``/``dtype`` it is made where torch's factories would make a tensor."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.device("meta"):
            p = CircularUniform((2,))
    finally:
        torch.set_default_dtype(previous)
    assert p.device == torch.device("meta") and p.dtype == torch.float64
    assert CircularUniform((2,)).device == torch.device("cpu")


GAMMA_SHAPES = [1e-3, 0.05, 0.7, 3.0, 1e3]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gamma_beta_dirichlet_follow_their_parameters(dtype):
    """Shapes from 1e-3 (log z far below -18: the series derivative) to 1e3 (the direct one)."""
    torch.manual_seed(0)
    alpha, rate = _leaf(GAMMA_SHAPES, dtype), _leaf([2.0] * len(GAMMA_SHAPES), dtype)
    with defaults_elsewhere(dtype):
        out = {}
        families = {
            "gamma": Gamma(alpha, rate),
            "beta": Beta(alpha, rate),
            "dirichlet": Dirichlet(torch.stack([alpha, rate], -1)),
        }
        for name, q in families.items():
            z = q.rsample((50,))
            out[f"{name}.rsample"] = z
            out[f"{name}.sample"] = q.sample()
            out[f"{name}.log_prob"] = q.log_prob(z)
            out.update({f"{name}.{k}": v for k, v in _grads(q.log_prob(z) + z.sum(), alpha, rate).items()})
    assert_follows(out, dtype)


@pytest.mark.parametrize("generator", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rsvi_samples_follow_their_parameters(dtype, generator):
    torch.manual_seed(0)
    gen = torch.Generator(device="cpu").manual_seed(1) if generator else None
    alpha = _leaf([0.05, 1.0, 7.0], dtype)
    loc, kappa = _leaf([0.3, 0.3, 0.3], dtype), _leaf([1e-3, 5.0, 1e4], dtype)
    cases = {
        "gamma B=0": (Independent(Gamma(alpha + 1.0, torch.ones_like(alpha)), 1), 0),
        "gamma B=2": (Gamma(alpha, torch.full_like(alpha, 2.0)), 2),
        "dirichlet": (Dirichlet(alpha), 1),
        "beta": (Beta(alpha, alpha.flip(0)), 1),
        "vonmises": (VonMises(loc, kappa), 1),
    }
    out = {}
    with defaults_elsewhere(dtype):
        for name, (q, b) in cases.items():
            s = rsvi_sample(q, (20,), B=b, generator=gen)
            out[f"{name}.z"], out[f"{name}.log_ratio"] = s.z, s.log_ratio
            leaves = (loc, kappa) if name == "vonmises" else (alpha,)
            out.update({f"{name}.{k}": v for k, v in _grads(s.z.sum() + s.log_ratio.sum(), *leaves).items()})
    assert_follows(out, dtype)


def test_the_trap_catches_a_factory_that_ignores_its_input():
    """The technique itself: a tensor from the defaults is reported, one from the input is not."""
    from device_trap import DeviceLeak

    x = torch.ones(3)
    with defaults_elsewhere(torch.float32):
        assert (x * torch.full_like(x, 2.0)).dtype == torch.float32
        with pytest.raises(DeviceLeak, match="meta"):
            x.mul_(torch.tensor(2.0))  # torch would accept a 0-dim CPU tensor here; a 0-dim meta one too
        with pytest.raises(DeviceLeak, match="mixed"):
            _ = x + torch.zeros(3, device=x.device)  # the device followed, the dtype did not


def test_cached_scalars_made_in_inference_mode_serve_training():
    """bessel.scalar_like caches 0-dim tensors per value, dtype and device. One first made inside
    ``torch.inference_mode`` (a validation loop, `vae-lab eval`) must still be usable by a training step
    that autograd records: the entropy's large-kappa expansion multiplies by cached coefficients."""
    from vae_lab.distributions.bessel import _scalar

    _scalar.cache_clear()
    kappa = torch.tensor([20.0, 300.0], dtype=torch.float64)
    with torch.inference_mode():
        VonMises(torch.zeros(2, dtype=torch.float64), kappa).entropy()
    leaf = kappa.clone().requires_grad_()
    (grad,) = torch.autograd.grad(VonMises(torch.zeros_like(leaf), leaf).entropy().sum(), [leaf])
    assert torch.isfinite(grad).all()
