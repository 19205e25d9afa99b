"""vae_lab.distributions.power_spherical (De Cao & Aziz 2020) and sphere_uniform.

Against independent references: the law of t = mu.z against scipy's Beta ((1 + t)/2 ~ Beta(a, b), KS
test), the direction around mu against the uniform law, the density's normalization and entropy by
quadrature (scipy's quad on the circle, Gauss-Legendre x periodic trapezoid on S^2), log_prob against
the paper's formula written out with scipy, the KL and moments against Monte Carlo within 4 standard
errors, and unbiased gradients of E[f(z)] (implicit, score and RSVI, f + constant) against the closed
form of E[f], in float32 and float64 over the posterior head's clip range of kappa.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sp
import scipy.stats as st
import torch
import torch.nn.functional as F
from estimators.estimator_cases import Case, assert_unbiased, per_copy_gradients
from torch.distributions import kl_divergence

from vae_lab.distributions import PowerSpherical, SphereUniform
from vae_lab.distributions.capabilities import has_explicit_rsample, has_implicit_rsample, support_covers
from vae_lab.distributions.sphere_uniform import log_sphere_area, unit_sphere
from vae_lab.estimators import ImplicitEstimator, ReparamEstimator, RSVIEstimator, ScoreFunctionEstimator

F64 = torch.float64
#: the posterior head's clip range of kappa (conf/posterior/power_spherical.yaml), its middle, and 0
KAPPAS = [0.0, 1e-3, 0.5, 5.0, 100.0, 1e3]


def _unit(d: int, seed: int, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(d, generator=g, dtype=F64), dim=-1).to(dtype)


def _reference_log_prob(z: np.ndarray, mu: np.ndarray, kappa: float) -> np.ndarray:
    """The paper's log C + kappa log(1 + mu.z), C = [2^(a+b) pi^b Gamma(a)/Gamma(a+b)]^-1, with scipy."""
    d = mu.shape[-1]
    a, b = (d - 1) / 2 + kappa, (d - 1) / 2
    log_c = -((a + b) * math.log(2) + b * math.log(math.pi) + sp.gammaln(a) - sp.gammaln(a + b))
    return log_c + kappa * np.log1p(z @ mu)


# -- shapes, support, capabilities ------------------------------------------------------------------
def test_shapes_broadcasting_and_expand():
    loc = F.normalize(torch.randn(4, 1, 5, dtype=F64), dim=-1)
    q = PowerSpherical(loc, torch.tensor([0.5, 2.0, 9.0], dtype=F64))
    assert q.batch_shape == (4, 3) and q.event_shape == (5,) and q.dim == 5
    z = q.rsample((7,))
    assert z.shape == (7, 4, 3, 5) and z.dtype == F64
    assert q.log_prob(z).shape == (7, 4, 3)
    assert q.entropy().shape == (4, 3) and q.mean.shape == (4, 3, 5) and q.variance.shape == (4, 3, 5)
    e = q.expand((2, 4, 3))
    assert type(e) is PowerSpherical and e.sample().shape == (2, 4, 3, 5)
    with pytest.raises(ValueError):
        PowerSpherical(torch.ones(3, 1), torch.ones(3))  # D = 1
    with pytest.raises(ValueError):
        PowerSpherical(torch.ones(3, 2), torch.ones(3), validate_args=True)  # loc not a unit vector
    with pytest.raises(ValueError):
        PowerSpherical(_unit(3, 0), torch.tensor(-1.0, dtype=F64), validate_args=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kappa", [1e-3, 1e3, 1e6])
def test_samples_are_unit_vectors_and_gradients_finite(dtype, kappa):
    torch.manual_seed(0)
    loc = torch.stack([_unit(4, s, dtype) for s in range(3)] + [torch.tensor([1.0, 0, 0, 0], dtype=dtype)])
    loc.requires_grad_()
    k = torch.full((4,), kappa, dtype=dtype, requires_grad=True)
    q = PowerSpherical(loc, k, validate_args=True)
    z = q.rsample((1000,))
    assert unit_sphere.check(z).all()
    lp = q.log_prob(z)
    (z[..., 0].sum() + lp.sum()).backward()
    assert torch.isfinite(lp).all() and torch.isfinite(k.grad).all() and torch.isfinite(loc.grad).all()


def test_capabilities_and_supports():
    q = PowerSpherical(_unit(3, 0), torch.tensor(2.0, dtype=F64))
    assert has_implicit_rsample(q) and not has_explicit_rsample(q)
    assert ImplicitEstimator.supports(q) and ScoreFunctionEstimator.supports(q) and RSVIEstimator.supports(q)
    assert not ReparamEstimator.supports(q)
    assert support_covers(SphereUniform(3).support, q.support) is True
    # a density on the sphere is relative to the surface measure: nothing full-dimensional covers it
    assert support_covers(torch.distributions.constraints.real, q.support) is False
    assert support_covers(q.support, torch.distributions.constraints.real) is False


# -- the sampler against the density ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [2, 3, 10])
@pytest.mark.parametrize("kappa", KAPPAS)
def test_law_of_mu_dot_z_is_the_beta(kappa, d, dtype):
    """(1 + mu.z)/2 ~ Beta((d-1)/2 + kappa, (d-1)/2): KS test against scipy."""
    torch.manual_seed(1)
    mu = _unit(d, d, dtype)
    z = PowerSpherical(mu, torch.tensor(kappa, dtype=dtype)).sample((20_000,))
    # 1 - mu.z from |z - mu|^2 / 2, so that it keeps its digits where t is near 1 (large kappa)
    one_minus_t = (z.double() - mu.double()).square().sum(-1).numpy() / 2
    b = (d - 1) / 2
    p = st.kstest(one_minus_t / 2, st.beta(b, b + kappa).cdf).pvalue  # (1 - t)/2 ~ Beta(b, a)
    assert p > 1e-3, p


@pytest.mark.parametrize("kappa", [0.5, 50.0])
def test_direction_around_mu_is_uniform(kappa):
    """In S^2 the angle of z's component orthogonal to mu is uniform on [-pi, pi), whatever mu, also for
    mu near e1 and -e1 (where the reflection switches sides)."""
    torch.manual_seed(2)
    for mu in (
        _unit(3, 5),
        torch.tensor([1.0, 1e-9, 0.0], dtype=F64),
        torch.tensor([-1.0, 0.0, 0.0], dtype=F64),
    ):
        mu = mu / mu.norm()
        z = PowerSpherical(mu, torch.tensor(kappa, dtype=F64)).sample((20_000,))
        e1 = F.normalize(torch.linalg.cross(mu, torch.tensor([0.3, 0.5, 0.8], dtype=F64)), dim=-1)
        e2 = torch.linalg.cross(mu, e1)
        angle = torch.atan2(z @ e2, z @ e1).numpy()
        assert st.kstest(angle, st.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3


def test_circle_sides_are_equally_likely():
    """D = 2: v in S^0 is +-1 with probability 1/2 each (binomial test)."""
    torch.manual_seed(3)
    mu = _unit(2, 1)
    z = PowerSpherical(mu, torch.tensor(3.0, dtype=F64)).sample((20_000,))
    side = (mu[0] * z[:, 1] - mu[1] * z[:, 0]) > 0
    assert st.binomtest(int(side.sum()), side.numel()).pvalue > 1e-3


# -- density, entropy, KL ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [2, 3, 7])
@pytest.mark.parametrize("kappa", KAPPAS)
def test_log_prob_matches_the_papers_formula(kappa, d, dtype):
    """Float32 to its rounding of |log q| (the rearranged form keeps its digits at kappa = 1e3), float64
    to 1e-10, at samples and at points spread over the sphere."""
    torch.manual_seed(4)
    mu = _unit(d, 7)
    q = PowerSpherical(mu.to(dtype), torch.tensor(kappa, dtype=dtype))
    spread = SphereUniform(d, dtype=F64).sample((200,))
    spread = spread[(spread @ mu) > -0.999]  # log1p(mu.z) of the reference loses digits near -mu
    z = torch.cat([q.sample((200,)).double(), spread])
    z = F.normalize(z, dim=-1)
    expected = _reference_log_prob(z.numpy(), mu.numpy(), kappa)
    got = q.log_prob(z.to(dtype)).double().numpy()
    scale = 1.0 + np.abs(expected) + kappa * 1e-6  # float32 samples of z are off the sphere by ~1e-7
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert np.all(np.abs(got - expected) <= tol * scale), np.max(np.abs(got - expected) / scale)


@pytest.mark.parametrize("kappa", [0.0, 0.3, 3.0, 50.0, 1e3])
def test_density_integrates_to_one_on_the_circle(kappa):
    """D = 2, z = (cos x, sin x): int q dx = 1 and -int q log q dx = H (scipy.integrate.quad)."""
    mu_angle = 0.7
    q = PowerSpherical(torch.tensor([math.cos(mu_angle), math.sin(mu_angle)], dtype=F64), torch.tensor(kappa))

    def log_q(x: float) -> float:
        return q.log_prob(torch.tensor([math.cos(x), math.sin(x)], dtype=F64)).item()

    kwargs = {"points": [mu_angle], "limit": 200, "epsabs": 1e-12, "epsrel": 1e-10}
    total, _ = si.quad(lambda x: math.exp(log_q(x)), -math.pi + mu_angle, math.pi + mu_angle, **kwargs)
    entropy, _ = si.quad(
        lambda x: -math.exp(log_q(x)) * log_q(x), -math.pi + mu_angle, math.pi + mu_angle, **kwargs
    )
    assert total == pytest.approx(1.0, abs=1e-8)
    assert entropy == pytest.approx(q.entropy().item(), abs=1e-7)


@pytest.mark.parametrize("kappa", [0.0, 0.3, 3.0, 50.0])
def test_density_integrates_to_one_on_the_sphere(kappa):
    """D = 3 in polar coordinates about a fixed axis (not mu): dA = d(cos th) d phi, Gauss-Legendre in
    cos th (scipy's roots_legendre) times the periodic trapezoid in phi; and scipy's dblquad at one point."""
    mu = _unit(3, 11)
    q = PowerSpherical(mu, torch.tensor(kappa, dtype=F64))
    c, w = sp.roots_legendre(400)
    phi = np.linspace(0, 2 * np.pi, 800, endpoint=False)
    cc, pp = np.meshgrid(c, phi, indexing="ij")
    ss = np.sqrt(1 - cc**2)
    z = torch.tensor(np.stack([ss * np.cos(pp), ss * np.sin(pp), cc], axis=-1))
    log_q = q.log_prob(z).numpy()
    weights = w[:, None] * (2 * np.pi / phi.size)
    # (1 + mu.z)^kappa is not smooth at -mu for non-integer kappa: the rule converges algebraically there
    assert np.sum(weights * np.exp(log_q)) == pytest.approx(1.0, abs=1e-6)
    assert np.sum(-weights * np.exp(log_q) * log_q) == pytest.approx(q.entropy().item(), abs=1e-6)
    if kappa == 3.0:

        def density(ph: float, th: float) -> float:
            point = [math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th)]
            return math.exp(q.log_prob(torch.tensor(point, dtype=F64)).item()) * math.sin(th)

        total, _ = si.dblquad(density, 0, math.pi, 0, 2 * math.pi, epsabs=1e-10, epsrel=1e-10)
        assert total == pytest.approx(1.0, abs=1e-8)


def _mean_and_se(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(0), x.std(0) / math.sqrt(x.shape[0])


@pytest.mark.parametrize("d", [2, 3, 10])
def test_kl_to_the_uniform_and_entropy_against_monte_carlo(d):
    """KL(q || U(S^(d-1))) = log|S| - H(q) against the mean of log q - log p, within 4 standard errors."""
    torch.manual_seed(5)
    kappa = torch.tensor([1e-3, 0.5, 5.0, 100.0, 1e3], dtype=F64)
    mu = torch.stack([_unit(d, s) for s in range(kappa.numel())])
    q, p = PowerSpherical(mu, kappa), SphereUniform(d, dtype=F64)
    exact = kl_divergence(q, p)
    assert exact.shape == (5,) and (exact >= 0).all()
    torch.testing.assert_close(exact, log_sphere_area(d) - q.entropy())
    z = q.sample((200_000,))
    mean, se = _mean_and_se(q.log_prob(z) - p.log_prob(z))
    assert torch.all((mean - exact).abs() < 4 * se + 1e-12), ((mean - exact) / se).tolist()
    with pytest.raises(ValueError):
        kl_divergence(q, SphereUniform(d + 1, dtype=F64))


def test_kl_float32_close_to_float64_and_differentiable_over_the_clip_range():
    kappa = torch.logspace(-3, 3, 25, dtype=F64)
    values = {}
    for dtype in (torch.float32, F64):
        k = kappa.to(dtype).requires_grad_()
        kl = kl_divergence(
            PowerSpherical(F.normalize(torch.ones(25, 4, dtype=dtype), dim=-1), k), SphereUniform(4)
        )
        kl.sum().backward()
        assert torch.isfinite(kl).all() and torch.isfinite(k.grad).all() and (k.grad > 0).all()
        values[dtype] = kl.detach().double()
    torch.testing.assert_close(values[torch.float32], values[F64], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kappa", [1e-3, 2.0, 300.0])
def test_mean_and_variance_against_monte_carlo(kappa):
    torch.manual_seed(6)
    q = PowerSpherical(_unit(4, 3), torch.tensor(kappa, dtype=F64))
    z = q.sample((200_000,))
    mean, se = _mean_and_se(z)
    assert torch.all((mean - q.mean).abs() < 4 * se), ((mean - q.mean) / se).tolist()
    sq_mean, sq_se = _mean_and_se((z - q.mean).square())
    assert torch.all((sq_mean - q.variance).abs() < 4 * sq_se), ((sq_mean - q.variance) / sq_se).tolist()


def test_sphere_uniform():
    p = SphereUniform(3, (2,), dtype=F64)
    assert p.batch_shape == (2,) and p.event_shape == (3,)
    z = p.sample((50_000,))
    assert z.shape == (50_000, 2, 3) and unit_sphere.check(z).all()
    torch.testing.assert_close(p.log_prob(z[:3]), torch.full((3, 2), -math.log(4 * math.pi), dtype=F64))
    torch.testing.assert_close(p.entropy(), torch.full((2,), math.log(4 * math.pi), dtype=F64))
    # Archimedes: on S^2 each coordinate of a uniform point is uniform on [-1, 1]
    assert st.kstest(z[:, 0, 2].numpy(), st.uniform(-1, 2).cdf).pvalue > 1e-3
    assert math.exp(log_sphere_area(2)) == pytest.approx(2 * math.pi)
    assert math.exp(log_sphere_area(4)) == pytest.approx(2 * math.pi**2)
    off_sphere = torch.tensor([[0.5, 0.0, 0.0]], dtype=F64)
    assert torch.isinf(SphereUniform(3, dtype=F64, validate_args=False).log_prob(off_sphere)).all()
    with pytest.raises(ValueError):
        p.log_prob(off_sphere)
    with pytest.raises(ValueError):
        SphereUniform(1)


# -- unbiased gradients -----------------------------------------------------------------------------
def _expected_f(w: torch.Tensor, kappa: torch.Tensor, c: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """E[c.z + (e.z)^2], mu = w/|w|, from the Beta moments of t = mu.z = 2B - 1 and E[v v^T] = (I -
    mu mu^T)/(d - 1): E[t] = (a - b)/(a + b), E[t^2] = 4 E[B^2] - 4 E[B] + 1."""
    d = w.shape[-1]
    mu = w / w.norm()
    a, b = (d - 1) / 2 + kappa, (d - 1) / 2
    mean_b, mean_b2 = a / (a + b), a * (a + 1) / ((a + b) * (a + b + 1))
    t1, t2 = 2 * mean_b - 1, 4 * mean_b2 - 4 * mean_b + 1
    em = e @ mu
    return t1 * (c @ mu) + t2 * em**2 + (1 - t2) / (d - 1) * (e @ e - em**2)


def power_spherical_case(n: int, dtype, kappa: float, d: int = 3) -> Case:
    w0 = _unit(d, 21) * 1.7  # not unit: the gradient w.r.t. w goes through the normalization
    c, e = _unit(d, 22), _unit(d, 23)
    w_exact = w0.clone().requires_grad_()
    k_exact = torch.tensor(kappa, dtype=F64, requires_grad=True)
    g_w, g_k = torch.autograd.grad(_expected_f(w_exact, k_exact, c, e), [w_exact, k_exact])
    cz, ez = c.to(dtype), e.to(dtype)
    return Case(
        params={
            "w": w0.to(dtype).repeat(n, 1).requires_grad_(),
            "concentration": torch.full((n, 1), kappa, dtype=dtype, requires_grad=True),
        },
        make_q=lambda p: PowerSpherical(F.normalize(p["w"], dim=-1), p["concentration"][:, 0]),
        f=lambda z: z @ cz + (z @ ez) ** 2,
        exact={"w": g_w, "concentration": g_k.reshape(1)},
    )


ESTIMATORS = {
    "implicit": ImplicitEstimator,
    "rsvi": lambda: RSVIEstimator(B=1),
    "score": lambda: ScoreFunctionEstimator(baseline="none"),
}


@pytest.mark.parametrize("offset", [0.0, -100.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kappa, d", [(1e-3, 3), (2.0, 3), (990.0, 3), (1e5, 2), (1e5, 3), (1e5, 10)])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_unbiased_gradients_over_the_clip_range(estimator, kappa, d, dtype, offset):
    """The mean of 100,000 single-sample gradients of f + offset w.r.t. kappa and the unnormalized mu,
    within 4 standard errors of the exact gradient of E[f]; up to kappa = 1e5, beyond the head's default
    clip (1e3), where an MNIST run's posteriors on the circle and the 2-sphere sit (README, Results)."""
    torch.manual_seed(7)
    case = power_spherical_case(100_000, dtype, kappa, d)
    f = case.f
    case.f = lambda z: f(z) + offset
    grads = per_copy_gradients(ESTIMATORS[estimator](), case)
    assert all(g.dtype == dtype for g in grads.values())
    assert_unbiased(grads, case.exact)


@pytest.mark.parametrize("d", [2, 10])
def test_unbiased_implicit_gradients_in_other_dimensions(d):
    torch.manual_seed(8)
    case = power_spherical_case(100_000, torch.float32, 3.0, d=d)
    assert_unbiased(per_copy_gradients(ImplicitEstimator(), case), case.exact)


def test_the_gradient_check_can_fail():
    """The same check catches gradients 3% off: those of samples drawn at 1.03 kappa."""
    torch.manual_seed(9)
    case = power_spherical_case(100_000, torch.float64, 2.0)
    make_q = case.make_q
    case.make_q = lambda p: make_q({"w": p["w"], "concentration": 1.03 * p["concentration"]})
    with pytest.raises(AssertionError, match="off the exact gradient"):
        assert_unbiased(per_copy_gradients(ImplicitEstimator(), case), case.exact)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_follows_the_device_and_dtype_of_its_parameters(dtype):
    """Under device_trap.defaults_elsewhere (default device meta, default dtype the other precision): every
    tensor the family, its KL and RSVI sampler make follows loc and kappa (no GPU needed to see a leak)."""
    from device_trap import assert_follows, defaults_elsewhere

    from vae_lab.distributions.rsvi import rsvi_sample

    torch.manual_seed(10)
    loc = torch.tensor([[1.0, 0.0, 0.0], [-0.6, 0.8, 0.0], [0.0, 0.6, -0.8]], dtype=dtype, requires_grad=True)
    kappa = torch.tensor([1e-3, 3.0, 1e3], dtype=dtype, requires_grad=True)
    with defaults_elsewhere(dtype):
        q = PowerSpherical(loc, kappa)
        p = SphereUniform(3, dtype=dtype, device=loc.device)
        z = q.rsample((50,))
        rs = rsvi_sample(q, (5,), B=1)
        kl = kl_divergence(q, p)
        out = {
            "rsample": z,
            "sample": q.sample((2,)),
            "log_prob": q.log_prob(z),
            "entropy": q.entropy(),
            "mean": q.mean,
            "variance": q.variance,
            "kl": kl,
            "prior_sample": p.sample((2,)),
            "prior_log_prob": p.log_prob(z),
            "rsvi_z": rs.z,
            "rsvi_log_ratio": rs.log_ratio,
        }
        objective = z.sum() + q.log_prob(z.detach()).sum() + kl.sum() + rs.z.sum() + rs.log_ratio.sum()
        grads = torch.autograd.grad(objective, [loc, kappa])
    out.update({f"grad[{i}]": g for i, g in enumerate(grads)})
    assert_follows(out, dtype)
