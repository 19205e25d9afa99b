r"""The von Mises CDF (Hill 1977, algorithm 518) and its concentration derivative, the implicit
reparameterization gradient
:math:`\partial z/\partial\kappa = -(\partial F/\partial\kappa)(x;\kappa)/q(x;0,\kappa)`.

For small :math:`\kappa` the Fourier series

.. math::

    F(x; \kappa) = \frac12 + \frac{x}{2\pi} + \frac1\pi \sum_{n \ge 1} \rho_n(\kappa) \frac{\sin nx}{n},
    \qquad \rho_n = \frac{I_n(\kappa)}{I_0(\kappa)},

with the ratios :math:`R_n = I_n / I_{n-1} = 1 / (2n/\kappa + R_{n+1})` from a backward recurrence; for
large :math:`\kappa` a normal approximation in :math:`\sin(x/2)` with Hill's correction term (switch at
:math:`\kappa = 10.5` in float32 and 50 in float64, Hill's 6- and 12-digit settings). The
:math:`\kappa`-derivative is computed in closed form for both branches (no autograd graph); float32
elements beyond 3.5 standard deviations with :math:`2 \le \kappa < 50`, where float32 loses digits, are
evaluated again in float64 (about 5 in 10,000 samples), and elements of either dtype beyond 5, where
both branches lose all digits further out, by quadrature (:mod:`~vae_lab.distributions.von_mises_tail`).

Accuracy of :math:`\partial z/\partial\kappa` against 30-digit quadrature, measured on a grid of 24
quantiles out to 6 standard deviations either side of the mode for :math:`\kappa` from 1e-3 to 1e3 (the
posterior head's range) and both sides of every switch: relative error at most 3e-5 in float32
(largest on both sides of the switch, 10.5; below 2e-5 elsewhere) and 3e-6 in float64 (Hill's normal
approximation just above :math:`\kappa = 50`; below 1e-8 elsewhere); over the whole circle, out to
:math:`\pm\pi` at :math:`\kappa` up to 1e4, at most 9.3e-6 and 5e-8 (``test_von_mises_tail.py``).
The series derivative needs no
Bessel function calls, keeps relative accuracy as :math:`x \to 0` and :math:`x \to \pm\pi`, and runs
with a number of terms chosen per group of concentrations (the elements are grouped by one stable sort
of their group numbers), on a CPU running one thread in blocks small enough for its dozen buffers to
stay in cache.

On a CPU, :func:`von_mises_dz_dconcentration` runs a fused C++ kernel (:mod:`vae_lab.distributions.kernels`,
built on first use; ``VAE_LAB_FUSED=0`` turns it off, a failed build falls back here with one warning):
one pass per element with its own number of terms, the float64 switch and terms, all in double for both
dtypes. Relative error on the grid above at most 2.6e-6 in both (Hill's approximation just above 50; for
:math:`\kappa < 50` 1.1e-7 in float32, its rounding, 1.1e-8 in float64); 1.5x (mixed) to 2x faster.

Reference:
    G. W. Hill. Algorithm 518: Incomplete Bessel function I0. The von Mises distribution. ACM
    Transactions on Mathematical Software 3(3):279-284, 1977.
"""

from __future__ import annotations

import math
import struct

import torch
from torch import Tensor

from vae_lab.distributions import kernels
from vae_lab.distributions.bessel import (
    asymptotic_i0e_and_complement,
    cpu_block_size,
    scalar_like,
    series_switch,
)
from vae_lab.distributions.von_mises_tail import correct_tail, rare_nonzero

__all__ = ["von_mises_cdf", "von_mises_dz_dconcentration"]

_PI = math.pi
_TWO_PI = 2.0 * math.pi
# pi = hi + lo, hi the dtype's nearest number to pi: computed on the host once, not per call from a tensor
# (which would be made on torch's default device, whatever the input's)
_PI_F32 = struct.unpack("f", struct.pack("f", math.pi))[0]
_PI_SPLIT = {torch.float32: (_PI_F32, _PI - _PI_F32), torch.float64: (_PI, 1.2246467991473532e-16)}
_s = scalar_like  # short: the hot paths below use it on every constant


def _series_terms(kappa_max: float, dtype: torch.dtype) -> int:
    """Number of series terms for concentrations up to ``kappa_max`` (Hill 1977, with his constants)."""
    k = max(float(kappa_max), 0.0)
    if dtype == torch.float64:
        n = 28.0 + 0.5 * k - 100.0 / (k + 5.0)
    else:
        n = 12.0 + 0.8 * k - 8.0 / (k + 1.0)
    return max(int(math.ceil(n)), 2)


def _cdf_series(x: Tensor, kappa: Tensor, n_terms: int) -> Tensor:
    r"""Hill's backward recurrence :math:`V_n = R_n(\sin(nx)/n + V_{n+1})`,
    :math:`R_n = 1/(2n/\kappa + R_{n+1})`.

    The sines run backwards by the Chebyshev recurrence
    :math:`\sin((n-1)x) = 2\cos x \sin(nx) - \sin((n+1)x)`.
    """
    two_over_k = 2.0 / kappa
    c2 = 2.0 * torch.cos(x)
    s_next = torch.sin((n_terms + 1) * x)
    s_cur = torch.sin(n_terms * x)
    r = torch.zeros_like(x + kappa)
    v = torch.zeros_like(r)
    for n in range(n_terms, 0, -1):
        r = 1.0 / (n * two_over_k + r)
        v = r * (s_cur / n + v)
        s_next, s_cur = s_cur, c2 * s_cur - s_next
    return (0.5 + x / _TWO_PI + v / _PI).clamp(0.0, 1.0)


def _normal_xi(x: Tensor, kappa: Tensor) -> Tensor:
    r"""Hill's corrected normal deviate :math:`\xi(x, \kappa)`, :math:`F \approx \Phi(\xi)`.

    With :math:`z = b \sin(x/2)`, :math:`b = \sqrt{2/\pi}\, e^{\kappa} / I_0(\kappa)` and
    :math:`c = 24\kappa`:
    :math:`\xi = z - z^3 / \big((c - 2z^2 - 16)/3 - (z^4 + 7z^2/4 + 167/2)/(c - 56 - z^2 + 3)\big)^2`.
    """
    s0, _ = asymptotic_i0e_and_complement(kappa)
    z = (2.0 * torch.sqrt(kappa) / s0) * torch.sin(0.5 * x)
    z2 = z * z
    c = 24.0 * kappa
    den = (c - 2.0 * z2 - 16.0) / 3.0 - (z2 * z2 + 1.75 * z2 + 83.5) / (c - 53.0 - z2)
    return z - z * z2 / (den * den)


def von_mises_cdf(x: Tensor, concentration: Tensor) -> Tensor:
    r"""CDF of the centred von Mises distribution, :math:`F(x;\kappa) = \int_{-\pi}^x q(t; 0, \kappa)\,dt`.

    Hill (1977), algorithm 518. ``x`` is extended periodically, :math:`F(x + 2\pi) = F(x) + 1` (as in
    ``scipy.stats.vonmises.cdf``). Differentiable with autograd in both arguments. Absolute error below
    1e-10 in float64 (series for :math:`\kappa < 50`) and below 1e-5 in float32 (series for
    :math:`\kappa < 10.5`).
    """
    x, kappa = torch.broadcast_tensors(x, concentration)
    if x.dtype not in (torch.float32, torch.float64):
        return von_mises_cdf(x.float(), kappa.float()).to(x.dtype)
    periods = torch.round(x / _TWO_PI)
    x = x - _TWO_PI * periods
    switch = series_switch(x.dtype)
    small = kappa.clamp(max=switch)
    n_terms = _series_terms(float(small.detach().max()) if small.numel() else 0.0, x.dtype)
    series = _cdf_series(x, small, n_terms)
    normal = torch.special.ndtr(_normal_xi(x, kappa.clamp(min=switch)))
    return torch.where(kappa < switch, series, normal) + periods


def _series_sums_by_horner(
    t: Tensor, d: Tensor, lam: Tensor, c1: Tensor, c2: Tensor, sigma: Tensor, n_terms: int
) -> tuple[Tensor, Tensor]:
    r"""(sum_n rho~_n' t_n / n, sum_n rho_n) by backward recurrences (see :func:`_dtheta_series`), in place.

    Ten passes per term. With :math:`e_n = (-1)^n \tilde R'_n` (the alternating sign saves a negation per
    term), every quantity that ends a step multiplied by :math:`\tilde R_n` is one row of a single buffer,
    scaled in one operation: :math:`\hat e_n = \tilde R_n(e_{n+1} + (-1)^n 2n\sigma/\kappa^2)`,
    :math:`e_n = \tilde R_n \hat e_n`, :math:`V'_n = \tilde R_n(V'_{n+1} + (-1)^n \hat e_n W_n)` with
    :math:`W_n = t_n/n + V_{n+1}`, :math:`V_n = \tilde R_n W_n`, and
    :math:`P_n = \sigma^n \sum_{m \ge n} \rho_m/\rho_{n-1} = \tilde R_n(\sigma^{n+1} + P_{n+1})`.
    """
    rows = torch.zeros((4, *t.shape), dtype=t.dtype, device=t.device)
    dv, v, p, e = rows.unbind()
    r = torch.zeros_like(t)
    one = _s(1.0, t)
    for n in range(n_terms, 0, -1):
        sign = 1.0 if n % 2 == 0 else -1.0
        r.add_(c1, alpha=float(n)).reciprocal_()
        e.add_(c2, alpha=sign * n).mul_(r)  # e^_n
        v.add_(t, alpha=1.0 / n)  # W_n
        dv.addcmul_(e, v, value=sign)
        if n % 2:
            p.add_(one)
        else:
            p.add_(sigma)
        rows.mul_(r)
        if n > 1:
            d.addcmul_(lam, t)
            t.add_(d)
    return dv, p.mul_(sigma)


def _dtheta_series(x: Tensor, kappa: Tensor, n_terms: int) -> Tensor:
    r""":math:`-(\partial F / \partial \kappa) / q(x)` for the series branch, ``x`` in :math:`[-\pi, \pi]`.

    Hill's recurrence :math:`V_n = R_n(\sin(nx)/n + V_{n+1})`, :math:`R_n = 1/(2n/\kappa + R_{n+1})`,
    differentiated term by term: :math:`R_n' = R_n^2 (2n/\kappa^2 - R_{n+1}')`,
    :math:`V_n' = R_n'(\sin(nx)/n + V_{n+1}) + R_n V_{n+1}'` and :math:`\partial F/\partial\kappa = V_1'/\pi`
    (this keeps full relative accuracy, unlike summing
    :math:`\rho_n' = (\rho_{n-1} + \rho_{n+1})/2 - A\rho_n`, which cancels for large :math:`\kappa`).
    The same recurrence gives :math:`e^{-\kappa} I_0 = 1/(1 + 2\sum_n \rho_n)` for the density, so no
    Bessel function is called.

    The sines must keep their relative accuracy where :math:`\partial F/\partial\kappa` vanishes, at
    :math:`x \to 0` and :math:`x \to \pm\pi`. So with :math:`y = |x|`, or :math:`y = \pi - |x|` and
    :math:`\sigma = -1` when :math:`|x| > \pi/2`, :math:`\sin(nx) = \mathrm{sgn}(x)\sigma^{n+1}\sin(ny)`,
    the factor :math:`\sigma^n` is absorbed into :math:`\tilde R_n = \sigma R_n` (which obeys the same
    recurrence with :math:`2\sigma/\kappa`), and :math:`\sin(ny)`, :math:`y \in [0, \pi/2]`, runs
    backwards by Reinsch's modification of the Chebyshev recurrence, stable for small :math:`y`:
    :math:`d_{n-1} = d_n - 4\sin^2(y/2)\, t_n`, :math:`t_{n-1} = t_n + d_{n-1}`, with
    :math:`t_n = \sin(ny)` and :math:`d_n = t_n - t_{n+1}`. All work is in place on a few buffers.
    """
    dtype = x.dtype
    pi_hi, pi_lo = _PI_SPLIT[dtype]
    ax = torch.abs(x)
    reflected = (ax > 0.5 * _PI).to(dtype)
    sigma = torch.mul(reflected, _s(-2.0, x)).add_(_s(1.0, x))
    # y = pi - |x| where reflected (pi_hi - |x| is exact by Sterbenz's lemma), else |x|.
    y = ax.mul_(sigma).add_(reflected, alpha=pi_hi).add_(reflected, alpha=pi_lo)
    c1 = torch.div(sigma, kappa).mul_(_s(2.0, x))  # 2 sigma / kappa
    c2 = torch.div(c1, kappa)  # 2 sigma / kappa^2
    half = torch.mul(y, _s(0.5, x)).sin_()
    half_sq = half * half
    lam = torch.mul(half_sq, _s(-4.0, x))
    t = torch.mul(y, _s(n_terms, x)).sin_()  # sin(N y)
    d = y.mul_(_s(n_terms + 0.5, x)).cos_().mul_(half).mul_(_s(-2.0, x))  # sin(N y) - sin((N + 1) y)
    dv, p = _series_sums_by_horner(t, d, lam, c1, c2, sigma, n_terms)
    # dtheta/dkappa = -(dV/pi) / q(x), 1/q(x) = 2 pi i0e(k) exp(2 k sin^2(x/2)), i0e = 1/(1 + 2p),
    # sin^2(x/2) = sin^2(y/2) or, reflected, 1 - sin^2(y/2).
    expo = torch.addcmul(reflected, half_sq, sigma).mul_(kappa).mul_(_s(2.0, x)).exp_()
    inv_i0e = p.mul_(_s(2.0, x)).add_(_s(1.0, x))
    return dv.mul_(torch.sign(x).mul_(sigma)).mul_(expo).div_(inv_i0e).mul_(_s(-2.0, x))


def _dtheta_normal(x: Tensor, kappa: Tensor) -> Tensor:
    r""":math:`-(\partial F / \partial \kappa) / q(x)` for the normal-approximation branch, in closed form.

    With :math:`F \approx \Phi(\xi(z, c))` (see :func:`_normal_xi`), :math:`z = b(\kappa)\sin(x/2)`,
    :math:`c = 24\kappa`, :math:`\partial z/\partial\kappa = z (1 - A)` (as :math:`b \propto 1/i_{0e}`) and
    :math:`\partial F/\partial\kappa = \varphi(\xi)(\xi_z z(1 - A) + 24 \xi_c)`. The ratio
    :math:`\varphi(\xi)/q(x) = \sqrt{2\pi}\, i_{0e}(\kappa) \exp(2\kappa\sin^2(x/2) - \xi^2/2)` is formed in
    the log domain: both factors underflow far in the tails for large :math:`\kappa`. The Bessel
    functions come from their asymptotic expansions (:math:`\kappa \ge 10.5` here).
    """
    s0, one_minus_a = asymptotic_i0e_and_complement(kappa)
    sk = torch.sqrt(kappa)
    half = torch.mul(x, _s(0.5, x)).sin_()
    z = torch.div(sk, s0).mul_(half).mul_(_s(2.0, x))
    z2 = z * z
    c = torch.mul(kappa, _s(24.0, x))
    d3 = torch.sub(c, z2).sub_(_s(53.0, x))  # c - 56 - z^2 + 3
    p_over_d3 = torch.add(z2, _s(1.75, x)).mul_(z2).add_(_s(83.5, x)).div_(d3)  # (z^4 + 7z^2/4 + 167/2) / d3
    den = torch.add(c, z2, alpha=-2.0).sub_(_s(16.0, x)).mul_(_s(1.0 / 3.0, x)).sub_(p_over_d3)
    inv_den = den.reciprocal_()
    zr = torch.mul(z, inv_den)  # z / den
    zr2 = zr * zr
    t = torch.mul(zr2, z)  # z^3 / den^2
    # -d den/dz = 4 z / 3 + (4 z^3 + 7 z / 2 + 2 z P / d3) / d3 ; d den/dc = 1/3 + P / d3^2
    neg_dden_dz = torch.mul(z2, _s(4.0, x)).add_(_s(3.5, x)).add_(p_over_d3, alpha=2.0).mul_(z).div_(d3)
    neg_dden_dz.add_(z, alpha=4.0 / 3.0)
    dden_dc = torch.div(p_over_d3, d3).add_(_s(1.0 / 3.0, x))
    two_t_over_den = torch.mul(t, inv_den).mul_(_s(2.0, x))  # 2 z^3 / den^3
    # dxi/dz = 1 - 3 z^2 / den^2 + (2 z^3 / den^3) d den/dz ; dxi/dc = (2 z^3 / den^3) d den/dc
    dxi_dz = torch.mul(zr2, _s(-3.0, x)).add_(_s(1.0, x)).addcmul_(two_t_over_den, neg_dden_dz, value=-1.0)
    dxi_dk = dxi_dz.mul_(z).mul_(one_minus_a).addcmul_(two_t_over_den, dden_dc, value=24.0)
    xi = z.sub_(t)
    log_ratio = torch.mul(half, half).mul_(kappa).mul_(_s(2.0, x)).addcmul_(xi, xi, value=-0.5)
    return dxi_dk.mul_(log_ratio.exp_()).mul_(s0.div_(sk)).neg_()


# Buckets of concentrations for the series branch of the gradient, by floor(log2(kappa)) (clamped), up to
# the switch to Hill's normal approximation (:func:`series_switch`: 10.5 in float32, 50 in float64):
# float32 [0, 0.5), [0.5, 1), [1, 2), [2, 4), [4, 8), [8, 10.5); float64 ... [8, 16), [16, 32), [32, 50).
# For each bucket the number of series terms that concentrations at its upper edge need to keep the
# truncation error of dtheta/dkappa, relative, below about 1e-7 (float32) and 1e-8 (float64) out to 6
# standard deviations (checked against 150 terms in the tests). A group of concentrations runs with the
# entry of the first bucket whose upper edge is at least its largest concentration (so kappa = 2 takes 12).
_DTHETA_TERMS: dict[torch.dtype, tuple[int, ...]] = {
    torch.float32: (7, 9, 12, 16, 23, 26),
    torch.float64: (10, 12, 15, 20, 27, 38, 50, 60),
}
# float32 keeps a relative error below 5e-5 within 3.5 standard deviations, but beyond it the series'
# far-tail terms cancel from kappa = 2 on, and Hill's normal approximation loses accuracy below kappa = 50
# (relative errors up to 1e-4 at 4, 1e-2 at 6 standard deviations, kappa = 10.5; up to 1 at kappa = 20,
# 6 standard deviations). So float32 elements with 2 <= kappa < 50 and a deviation
# 2 sqrt(kappa) |sin(x/2)| above 3.5 (about 5 in 10,000 samples) are evaluated again in float64.
_F32_TAIL_KAPPA = (2.0, 50.0)
_F32_TAIL_DEVIATION = 3.5
_F32_TAIL_BUCKET = 2 + int(math.log2(_F32_TAIL_KAPPA[0]))  # the first bucket that can hold such elements
# On a CPU running one thread every group is evaluated in blocks of this many elements (cpu_block_size), so
# that the dozen or so buffers of the recurrence stay in cache: about 2x faster than streaming each of its
# passes through memory (1e6 samples, kappa = 2).
_CPU_BLOCK = 1 << 15


# Fixed cost of one tensor operation, in units of the cost of one element of it (about 2 us against
# 0.12 ns on a CPU core). Buckets with few elements are merged with the next larger ones, which costs
# them extra series terms but saves a pass of the whole recurrence.
_OP_OVERHEAD_ELEMENTS = 16384.0


def _series_groups(counts: list[int], terms: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Contiguous runs of series buckets, ``(first, stop, n_terms)``, minimising the modelled cost
    ``sum(n_terms * (overhead + elements))`` (dynamic programming over at most 8 buckets)."""
    n = len(terms)
    best = [0.0] + [math.inf] * n
    start = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            size = sum(counts[i:j])
            top = max((b for b in range(i, j) if counts[b]), default=None)
            cost = best[i] + (0.0 if top is None else terms[top] * (_OP_OVERHEAD_ELEMENTS + size))
            if cost < best[j]:
                best[j], start[j] = cost, i
    groups = []
    j = n
    while j > 0:
        i = start[j]
        nonempty = [b for b in range(i, j) if counts[b]]
        if nonempty:
            groups.append((i, j, terms[nonempty[-1]]))
        j = i
    return groups[::-1]


def von_mises_dz_dconcentration(x: Tensor, concentration: Tensor) -> Tensor:
    r"""The implicit reparameterization derivative of a sample,
    :math:`\partial z/\partial\kappa = -(\partial F/\partial\kappa)(x;\kappa) / q(x;0,\kappa)`, at the centred
    sample :math:`x = z - \mu`.

    ``x`` must lie in :math:`[-\pi, \pi]`; ``x`` and ``concentration`` must have the same shape. Each
    branch of Hill's CDF is evaluated on the elements that need it, the series in groups of
    concentrations, each with the number of terms its largest concentrations need (and, for float32
    input with :math:`2 \le \kappa < 50` beyond 3.5 standard deviations, in float64; see
    ``_F32_TAIL_DEVIATION``).

    Accuracy against 30-digit mpmath quadrature, on a grid of 24 quantiles from -6 to +6 standard
    deviations (normal-equivalent levels) at concentrations from 1e-3 to 1e3: relative error at most
    3e-5 in float32 and 3e-6 in float64 (``tests/distributions/test_von_mises_cdf.py``; the fused CPU kernel:
    2.6e-6 in both). The elements are grouped by one sort of their bucket numbers, evaluated on contiguous
    slices (in blocks of ``_CPU_BLOCK`` on a CPU running one thread) and scattered back.
    """
    dtype = x.dtype
    if dtype not in (torch.float32, torch.float64):
        return von_mises_dz_dconcentration(x.float(), concentration.float()).to(dtype)
    if (fused := kernels.von_mises_dz_dconcentration(x, concentration)) is not None:
        return fused
    x_flat = x.reshape(-1)
    k_flat = concentration.reshape(-1)
    n = x_flat.numel()
    if n == 0:
        return torch.empty_like(x)
    terms = _DTHETA_TERMS[dtype]
    n_series = len(terms)
    which = torch.log2(k_flat).floor_().clamp_(-2.0, n_series - 3.0).add_(_s(2.0, k_flat))
    which = which.add_(k_flat >= series_switch(dtype)).to(torch.uint8)  # n_series: the normal approximation
    counts = torch.bincount(which, minlength=n_series + 1).tolist()
    groups: list[tuple[int, int, int | None]] = list(_series_groups(counts[:n_series], terms))
    if counts[n_series]:
        groups.append((n_series, n_series + 1, None))

    def evaluate(xs: Tensor, ks: Tensor, first: int, n_terms: int | None) -> Tensor:
        if n_terms is None:
            return _dtheta_normal(xs, ks)
        if first == 0:  # 2/kappa^2 overflows below about 1e-19 (float32); the derivative is flat there
            ks = ks.clamp(min=1e-12)
        return _dtheta_series(xs, ks, n_terms)

    if len(groups) == 1:
        order, xs, ks = None, x_flat, k_flat
    else:
        order = torch.sort(which, stable=True).indices  # stable: a reproducible permutation
        xs = x_flat.index_select(0, order)
        ks = k_flat.index_select(0, order)
    res = torch.empty_like(xs)
    offsets = [0]
    for c in counts:
        offsets.append(offsets[-1] + c)
    block = cpu_block_size(x, n, _CPU_BLOCK)
    far = torch.zeros(-(-n // 8) * 8, dtype=torch.bool, device=x.device) if dtype == torch.float32 else None
    for first, stop, n_terms in groups:
        if n_terms is not None:  # the terms that the group's largest concentration needs
            n_terms = _terms_up_to(float(ks[offsets[first] : offsets[stop]].max()), dtype)
        for lo in range(offsets[first], offsets[stop], block):
            hi = min(lo + block, offsets[stop])
            res[lo:hi] = evaluate(xs[lo:hi], ks[lo:hi], first, n_terms)
            if far is not None and stop > _F32_TAIL_BUCKET:
                far[lo:hi] = _far_tail(xs[lo:hi], ks[lo:hi], first < _F32_TAIL_BUCKET, n_terms is None)
    if far is not None and (idx := rare_nonzero(far)).numel():  # evaluated again in float64
        exact = von_mises_dz_dconcentration(
            xs.index_select(0, idx).double(), ks.index_select(0, idx).double()
        )
        res.index_copy_(0, idx, exact.to(dtype))
    out = res if order is None else torch.empty_like(x_flat).index_copy_(0, order, res)
    return correct_tail(x_flat, k_flat, out).reshape(x.shape)


def _terms_up_to(kappa_max: float, dtype: torch.dtype) -> int:
    """Series terms for concentrations up to ``kappa_max``: the entry of ``_DTHETA_TERMS`` of the first
    bucket whose upper edge (0.5, 1, 2, ..., the switch) is at least ``kappa_max``."""
    terms = _DTHETA_TERMS[dtype]
    for bucket, n_terms in enumerate(terms[:-1]):
        if kappa_max <= 2.0 ** (bucket - 1):
            return n_terms
    return terms[-1]


def _far_tail(x: Tensor, kappa: Tensor, check_low: bool, check_high: bool) -> Tensor:
    r"""Mask of the float32 elements to evaluate again in float64: :math:`2 \le \kappa < 50` (each bound
    tested only where a group can cross it) and a deviation :math:`2\sqrt\kappa|\sin(x/2)| > 3.5`, tested as
    :math:`\kappa\sin^2(x/2) > 3.5^2/4`."""
    lo, hi = _F32_TAIL_KAPPA
    s2k = torch.mul(x, _s(0.5, x)).sin_()
    mask = s2k.mul_(s2k).mul_(kappa) > 0.25 * _F32_TAIL_DEVIATION**2
    if check_low:
        mask.logical_and_(kappa >= lo)
    if check_high:
        mask.logical_and_(kappa < hi)
    return mask
