r"""Rejection-sampling reparameterization (RSVI).

Naesseth, Ruiz, Linderman & Blei, "Reparameterization Gradients through Acceptance-Rejection
Sampling Algorithms", AISTATS 2017.

A rejection sampler draws a proposal z = h(eps, theta), eps ~ s(eps), and accepts it with a probability
that depends on theta. The accepted eps then has density

.. math::

    \pi(\epsilon; \theta) = s(\epsilon) \frac{q(h(\epsilon, \theta); \theta)}{r(h(\epsilon, \theta); \theta)}
                          = q(h(\epsilon, \theta); \theta) \left|\frac{\partial h}{\partial \epsilon}\right|,

and the gradient of E_q[f(z)] = E_pi[f(h(eps, theta))] splits into a reparameterization part and a
correction part:

.. math::

    \nabla_\theta E_q[f] = E_\pi[\nabla_\theta f(h(\epsilon, \theta))]
        + E_\pi[f(h(\epsilon, \theta)) \nabla_\theta \log \pi(\epsilon; \theta)].

:func:`rsvi_sample` returns both ingredients: ``z = h(eps, theta)`` (differentiable in theta with the
accepted eps held fixed) and ``log_ratio = log pi(eps; theta)`` (same). The RSVI estimator's surrogate
is ``f(z) + f(z).detach() * (log_ratio - log_ratio.detach())``.

Families:

* ``Gamma(alpha, rate)``: Marsaglia & Tsang (2000) proposal for shape ``alpha + B`` with shape
  augmentation (Naesseth et al., section 5):
  ``z = h(eps, alpha + B) * prod_{i=1..B} u_i^{1 / (alpha + i - 1)} / rate``; the correction uses only
  the Gamma(alpha + B) part, the ``u_i`` are an exact reparameterization. Computed in log space, so
  that ``u^{1/alpha}`` does not underflow before it has to.
* ``Dirichlet(alpha)``: normalized independent Gamma(alpha_i, 1) samples (a softmax of their logs);
  the log-ratios of the components add.
* ``Beta(c1, c0)``: a two-component Dirichlet.
* ``PowerSpherical(mu, kappa)`` (De Cao & Aziz 2020): the Beta((D-1)/2 + kappa, (D-1)/2) variate of
  (1 + mu.z)/2 as above, then the same direction and reflection as its ``rsample``; the log-ratio is the
  Beta's.
* ``VonMises(loc, kappa)``: the Best & Fisher (1979) wrapped-Cauchy proposal, the same sampler as the
  implicit path's (:mod:`vae_lab.distributions.best_fisher`), in the parameters' dtype. ``B`` does not
  apply.

Choice for ``B = 0`` and ``alpha < 1``: Marsaglia & Tsang's method is stated for shapes >= 1 and
Naesseth et al. reach smaller shapes only through shape augmentation (B >= 1), so ``B = 0`` with any
``alpha < 1`` raises a ``ValueError`` instead of silently switching to another B. (The proposal is in
fact exact for shape > 1/3, but its acceptance rate and float32 precision degrade towards 1/3, and the
paper does not use it there.)

Random numbers come from torch's generators (the global one, or ``generator``). The accept/reject loop
runs in float64 without gradients, over rounds of the still-rejected entries; the differentiable path
is then rebuilt in the distribution's dtype from the accepted noise, and the Gamma log-ratio in float64.
Gamma, Dirichlet and Beta samples remember their exact logs
(:func:`vae_lab.distributions.log_space.log_of`), which underflow in z for small shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Beta, Dirichlet, Distribution, Gamma, Independent
from torch.distributions import VonMises as TorchVonMises

from vae_lab.distributions.angles import wrap_angle
from vae_lab.distributions.best_fisher import accepted_noise, proposal_path
from vae_lab.distributions.log_space import remember_logs
from vae_lab.distributions.power_spherical import PowerSpherical

__all__ = ["RejectionSample", "has_rejection_sampler", "rsvi_sample"]


@dataclass
class RejectionSample:
    """One RSVI draw.

    Attributes:
        z: the sample, shape ``sample_shape + batch_shape + event_shape``; differentiable w.r.t. the
            distribution's parameters through the proposal path h(eps, theta), the accepted eps fixed.
        log_ratio: ``log pi(eps; theta) = log q(h(eps, theta); theta) + log |dh/deps|``, shape
            ``sample_shape + batch_shape`` (summed over event dimensions); its gradient, multiplied
            by f(z), is the RSVI correction term.
    """

    z: Tensor
    log_ratio: Tensor


def rsvi_sample(
    q: Distribution,
    sample_shape: torch.Size | tuple[int, ...] = (),
    B: int = 1,
    generator: torch.Generator | None = None,
) -> RejectionSample:
    """Draw a reparameterized rejection sample from ``q`` (looking through ``Independent``).

    Args:
        q: a Gamma, Dirichlet, Beta, Power Spherical or von Mises distribution, possibly wrapped in
            ``Independent``.
        sample_shape: leading sample dimensions.
        B: shape augmentation for the Gamma-based families and Power Spherical (ignored by von Mises);
            ``B = 0`` needs every shape parameter >= 1.
        generator: optional torch generator for the noise.

    Raises:
        ValueError: for ``B < 0``, or ``B = 0`` with a shape parameter below 1.
        TypeError: for a family without a rejection sampler here.
    """
    if isinstance(B, bool) or not isinstance(B, int) or B < 0:
        raise ValueError(f"B must be an integer >= 0, got {B!r}")
    sample_shape = torch.Size(sample_shape)
    base = q
    while isinstance(base, Independent):  # (not estimators.base.base_distribution: no import cycle)
        base = base.base_dist
    out = _rsvi_sample(base, sample_shape, B, generator)
    extra = len(q.event_shape) - len(base.event_shape)  # dims that Independent reinterpreted
    if extra:
        out.log_ratio = out.log_ratio.sum(dim=tuple(range(-extra, 0)))
    return out


@singledispatch
def _rsvi_sample(base: Distribution, sample_shape: torch.Size, B: int, generator) -> RejectionSample:
    names = ", ".join(cls.__name__ for cls in _rsvi_sample.registry if cls is not object)
    raise TypeError(f"no rejection sampler for {type(base).__name__} (supported: {names})")


# ----------------------------------------------------------------------------------------------------
# Gamma: Marsaglia & Tsang with shape augmentation


def _marsaglia_tsang_eps(a: Tensor, generator: torch.Generator | None) -> Tensor:
    """Accepted N(0, 1) noise of Marsaglia & Tsang's sampler for Gamma(a, 1), a >= 1, in float64.

    Proposal z = d v, v = (1 + c eps)^3, d = a - 1/3, c = 1 / sqrt(9 d); accept when
    log u < eps^2 / 2 + d - d v + d log v (and v > 0).
    """
    with torch.no_grad():
        d = (a.detach().to(torch.float64) - 1.0 / 3.0).reshape(-1)
        c = torch.rsqrt(9.0 * d)
        eps = torch.empty_like(d)
        todo = torch.arange(d.numel(), device=d.device)
        while todo.numel() > 0:
            dd, cc = d[todo], c[todo]
            x = torch.randn(todo.shape, dtype=d.dtype, device=d.device, generator=generator)
            u = torch.rand(todo.shape, dtype=d.dtype, device=d.device, generator=generator)
            t = cc * x
            positive = t > -1.0
            log1p_t = torch.log1p(torch.where(positive, t, 0.0))  # masked below where t <= -1
            # d (1 - v + log v) with v = (1 + t)^3, written to avoid cancelling 1 - v against log v
            log_accept = 0.5 * x * x + dd * (3.0 * log1p_t - t * (3.0 + t * (3.0 + t)))
            accept = positive & (torch.log(u) < log_accept)
            eps[todo[accept]] = x[accept]
            todo = todo[~accept]
        return eps.reshape(a.shape)


def _mt_log_h(eps: Tensor, a: Tensor) -> Tensor:
    """log h(eps, a) = log((a - 1/3) (1 + eps / sqrt(9 a - 3))^3)."""
    d = a - 1.0 / 3.0
    return torch.log(d) + 3.0 * torch.log1p(eps * torch.rsqrt(9.0 * d))


def _mt_log_density(eps: Tensor, a: Tensor) -> Tensor:
    r"""log pi(eps; a) = log Gamma(h(eps, a); a, 1) + log dh/deps, the density of accepted eps.

    With d = a - 1/3, t = eps / sqrt(9 d), v = (1 + t)^3 it equals

    .. math:: d (\log v - v + 1) + (a - 1/2) \log d - d - \log\Gamma(a),

    a form without the large cancelling terms (a - 1) log h - h of the direct one.
    """
    d = a - 1.0 / 3.0
    t = eps * torch.rsqrt(9.0 * d)
    log_v_minus_v_plus_1 = 3.0 * torch.log1p(t) - t * (3.0 + t * (3.0 + t))
    return d * log_v_minus_v_plus_1 + (a - 0.5) * torch.log(d) - d - torch.lgamma(a)


def _log_standard_gamma(
    alpha: Tensor, sample_shape: torch.Size, B: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """(log z, log pi(eps)) of RSVI Gamma(alpha, 1) samples, elementwise, shape sample_shape + alpha.shape.

    log pi is evaluated in float64 (and differentiated there, whatever alpha's dtype): its a-derivative is
    a difference of terms of size log(a) that cancel to O(1/a^2), and in float32 the rounding left
    E[d log pi / d a] at -1.5e-7 for a = 1e3 (1000 standard errors of 400k draws from 0), a bias that the
    correction term multiplies by the whole objective. The path log z stays in alpha's dtype.
    """
    if B == 0 and bool((alpha < 1).any()):
        raise ValueError(
            "B = 0 needs every Gamma/Dirichlet/Beta shape parameter >= 1 (Marsaglia-Tsang without "
            f"shape augmentation); got a minimum of {alpha.min().item():.3g}. Use B >= 1."
        )
    alpha = alpha.expand(sample_shape + alpha.shape)
    a = alpha + B
    eps = _marsaglia_tsang_eps(a, generator)
    log_z = _mt_log_h(eps.to(alpha.dtype), a)
    if B > 0:
        # u ~ U(0, 1]: 1 - rand avoids log(0)
        u = 1.0 - torch.rand((B,) + a.shape, dtype=alpha.dtype, device=alpha.device, generator=generator)
        offsets = torch.arange(B, dtype=alpha.dtype, device=alpha.device).reshape((B,) + (1,) * a.dim())
        log_z = log_z + (torch.log(u) / (alpha + offsets)).sum(0)
    log_ratio = _mt_log_density(eps, a.to(torch.float64)).to(alpha.dtype)
    return log_z, log_ratio


@_rsvi_sample.register
def _(base: Gamma, sample_shape: torch.Size, B: int, generator) -> RejectionSample:
    log_g, log_ratio = _log_standard_gamma(base.concentration, sample_shape, B, generator)
    log_z = log_g - torch.log(base.rate)
    z = torch.exp(log_z).clamp_min(torch.finfo(log_z.dtype).tiny)  # same floor as torch's Gamma
    return RejectionSample(z=remember_logs(z, log_z), log_ratio=log_ratio)


@_rsvi_sample.register
def _(base: Dirichlet, sample_shape: torch.Size, B: int, generator) -> RejectionSample:
    log_g, log_ratio = _log_standard_gamma(base.concentration, sample_shape, B, generator)
    # normalizing in log space keeps tiny concentrations (whose gammas underflow) on the simplex
    z = torch.softmax(log_g, dim=-1).clamp_min(torch.finfo(log_g.dtype).tiny)
    return RejectionSample(z=remember_logs(z, torch.log_softmax(log_g, dim=-1)), log_ratio=log_ratio.sum(-1))


def _beta_logit(
    c1: Tensor, c0: Tensor, sample_shape: torch.Size, B: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """(logit, log pi) of RSVI Beta(c1, c0) samples: logit = log g1 - log g0 = log z - log(1 - z), and the
    summed log-ratios of the two Gamma variates."""
    log_g, log_ratio = _log_standard_gamma(torch.stack([c1, c0], dim=-1), sample_shape, B, generator)
    return log_g[..., 0] - log_g[..., 1], log_ratio.sum(-1)


@_rsvi_sample.register
def _(base: Beta, sample_shape: torch.Size, B: int, generator) -> RejectionSample:
    logit, log_ratio = _beta_logit(base.concentration1, base.concentration0, sample_shape, B, generator)
    finfo = torch.finfo(logit.dtype)
    z = torch.sigmoid(logit).clamp(finfo.tiny, 1.0 - finfo.eps)
    z = remember_logs(z, F.logsigmoid(logit), F.logsigmoid(-logit))
    return RejectionSample(z=z, log_ratio=log_ratio)


# ----------------------------------------------------------------------------------------------------
# von Mises: Best & Fisher (the sampler of vae_lab.distributions.best_fisher)


@_rsvi_sample.register
def _(base: TorchVonMises, sample_shape: torch.Size, B: int, generator) -> RejectionSample:
    shape = sample_shape + base.batch_shape
    kappa = base.concentration.expand(shape)
    noise = accepted_noise(kappa, generator)
    x, log_ratio = proposal_path(noise.reshape(shape), kappa)
    return RejectionSample(z=wrap_angle(base.loc + x), log_ratio=log_ratio)


# ----------------------------------------------------------------------------------------------------
# Power Spherical (De Cao & Aziz 2020): its Beta variate through the Gamma sampler above


@_rsvi_sample.register
def _(base: PowerSpherical, sample_shape: torch.Size, B: int, generator) -> RejectionSample:
    # (1 + mu.z)/2 ~ Beta(a, b); the direction and the reflection are an exact reparameterization
    a, b = base.beta_shapes()
    logit, log_ratio = _beta_logit(a, b, sample_shape, B, generator)
    return RejectionSample(z=base.place(logit, generator), log_ratio=log_ratio)


def has_rejection_sampler(q: Distribution) -> bool:
    """Whether a rejection sampler is registered for ``q``'s family (looking through ``Independent``)."""
    base = q
    while isinstance(base, Independent):
        base = base.base_dist
    return _rsvi_sample.dispatch(type(base)) is not _rsvi_sample.dispatch(object)
