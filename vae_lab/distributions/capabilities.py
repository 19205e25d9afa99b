r"""What a distribution can do, read off the distribution itself: which gradient estimators apply to it,
and whether one distribution's support covers another's.

* explicit reparameterization: ``rsample`` is a differentiable transform of parameter-free noise (torch's
  location-scale and transformed families);
* implicit reparameterization: ``rsample`` differentiates the sample through its CDF, dz/dphi =
  -(dF/dphi)/q (Figurnov, Mohamed & Mnih 2018): vae-lab's families declare it with the class attribute
  ``implicit_rsample = True``; torch's Gamma-based samplers (Gamma, Chi2, Beta, Dirichlet) work so too;
* a rejection sampler registered for RSVI (:func:`vae_lab.distributions.rsvi.has_rejection_sampler`);
* a density: ``log_prob`` implemented (the score function needs nothing else).

:func:`support_covers` compares support constraints as intervals per coordinate, deterministically: a
prior must cover every value a posterior can take (up to the boundary, which has measure zero). A
distribution on the unit sphere has a density with respect to the sphere's surface measure, so a sphere
support covers, and is covered by, only another sphere support.
"""

from __future__ import annotations

import math

from torch.distributions import Beta, Dirichlet, Distribution, Gamma, Independent, constraints

from vae_lab.distributions.sphere_uniform import unit_sphere

__all__ = [
    "base_distribution",
    "has_explicit_rsample",
    "has_implicit_rsample",
    "implements",
    "sample_support",
    "support_bounds",
    "support_covers",
]

# torch's own families whose rsample is implicit (they differentiate torch._standard_gamma's CDF)
_TORCH_IMPLICIT = (Gamma, Beta, Dirichlet)


def base_distribution(q: Distribution) -> Distribution:
    """The elementwise distribution beneath any ``Independent`` wrappers."""
    while isinstance(q, Independent):
        q = q.base_dist
    return q


def implements(q: Distribution, method: str) -> bool:
    """Whether ``q``'s class overrides ``torch.distributions.Distribution.<method>`` (not the stub that
    raises NotImplementedError)."""
    base = base_distribution(q)
    return getattr(type(base), method, None) is not getattr(Distribution, method, None)


def has_implicit_rsample(q: Distribution) -> bool:
    base = base_distribution(q)
    return bool(base.has_rsample) and (
        bool(getattr(type(base), "implicit_rsample", False)) or isinstance(base, _TORCH_IMPLICIT)
    )


def has_explicit_rsample(q: Distribution) -> bool:
    base = base_distribution(q)
    return bool(base.has_rsample) and implements(base, "rsample") and not has_implicit_rsample(base)


def sample_support(q: Distribution) -> constraints.Constraint:
    """Where ``q``'s samples lie: its ``support``, or the narrower ``sample_support`` a family declares (a
    von Mises density takes any real angle, its samples lie in [-pi, pi))."""
    return getattr(base_distribution(q), "sample_support", q.support)


def _unwrap(constraint: constraints.Constraint) -> constraints.Constraint:
    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    return constraint


def support_bounds(constraint: constraints.Constraint) -> tuple[float, float] | None:
    """The interval (lower, upper) that every coordinate of the support lies in, or None when the
    constraint is not an interval of the real line (a discrete or matrix support, ...)."""
    c = _unwrap(constraint)
    if c is constraints.real or isinstance(c, type(constraints.real)):
        return -math.inf, math.inf
    if isinstance(c, (constraints.greater_than, constraints.greater_than_eq)):
        return float(c.lower_bound), math.inf
    if isinstance(c, (constraints.less_than,)):
        return -math.inf, float(c.upper_bound)
    if isinstance(c, (constraints.interval, constraints.half_open_interval)):
        return float(c.lower_bound), float(c.upper_bound)
    if c is constraints.simplex or isinstance(c, type(constraints.simplex)):
        return 0.0, 1.0
    return None


def support_covers(outer: constraints.Constraint, inner: constraints.Constraint) -> bool | None:
    """Whether every value in the support ``inner`` lies in the support ``outer`` (boundaries aside); None
    when either is not an interval (then nothing can be said from the constraints alone). Sphere supports
    (of :class:`~vae_lab.distributions.PowerSpherical`, :class:`~vae_lab.distributions.SphereUniform`) cover
    each other only."""
    spheres = (_unwrap(outer) is unit_sphere, _unwrap(inner) is unit_sphere)
    if any(spheres):
        return all(spheres)
    a, b = support_bounds(outer), support_bounds(inner)
    if a is None or b is None:
        return None
    return a[0] <= b[0] and b[1] <= a[1]
