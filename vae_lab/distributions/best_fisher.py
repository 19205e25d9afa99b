r"""The Best & Fisher (1979) rejection sampler of the von Mises distribution, shared by the implicit
(:meth:`vae_lab.distributions.VonMises.rsample`) and the RSVI (:mod:`vae_lab.distributions.rsvi`) paths.

The proposal is a wrapped Cauchy. Its accepted noise is returned as a signed uniform :math:`u \in [-1, 1)`;
with :math:`a = \pi|u|/2` the centred sample is

.. math:: x = \mathrm{sgn}(u)\, 2\arcsin\!\big(\cos a / \sqrt{D}\big), \qquad D = 1 + 2w\sin^2 a,

equivalently :math:`|x| = 2\arctan\!\big(\beta \cot a\big)` with :math:`\beta = (1 - \rho)/(1 + \rho)` and
:math:`2w = 1/\beta^2 - 1` (:func:`proposal_path`, the form RSVI differentiates). The sampler works in the
parameters' dtype, with its constants and its angle rewritten so that nothing cancels for :math:`\kappa`
from 1e-6 to 1e6 (and beyond); small batches propose several candidates per round to need fewer rounds;
the only Python loop runs over rejection rounds of the still-rejected entries.

On a CPU, for float32 and float64, a fused kernel
(:mod:`vae_lab.distributions.kernels`, ``best_fisher.cpp``) runs the same sampler in one pass, all
arithmetic in double, its random numbers from Philox4x32-10 under a key drawn from torch's generator (so
``torch.manual_seed`` or a ``generator`` reproduce its samples, but the stream differs from the eager
code's: the two agree in distribution only). ``VAE_LAB_FUSED=0`` turns it off.

Reference:
    D. J. Best and N. I. Fisher. Efficient simulation of the von Mises distribution. Journal of the
    Royal Statistical Society C (Applied Statistics) 28(2):152-157, 1979.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vae_lab.distributions import kernels
from vae_lab.distributions.angles import largest_below_pi
from vae_lab.distributions.bessel import cpu_block_size, log_i0e, scalar_like

__all__ = ["accepted_noise", "proposal_path", "sample_centred"]

_PI = math.pi
_LOG_PI = math.log(math.pi)
_LOG_TWO_PI = math.log(2.0 * math.pi)
_s = scalar_like  # short: the hot paths below use it on every constant


# The proposal constants are computed from min(kappa, 1e15), which keeps 4 kappa^2 finite in float32; the
# samples of larger concentrations are then too wide by a factor sqrt(kappa / 1e15), at a scale below 3e-8.
_SAMPLER_KAPPA_MAX = 1e15


def _proposal_constants(kappa: Tensor) -> tuple[Tensor, Tensor]:
    r"""Per-element constants of the Best-Fisher wrapped-Cauchy envelope, free of cancellation.

    Best & Fisher: :math:`\tau = 1 + \sqrt{1 + 4\kappa^2}`, :math:`\rho = (\tau - \sqrt{2\tau})/(2\kappa)`,
    :math:`r = (1 + \rho^2)/(2\rho)`. Both :math:`\tau - \sqrt{2\tau}` (small :math:`\kappa`) and
    :math:`r - 1` (large :math:`\kappa`) cancel catastrophically in floating point, so with
    :math:`h = \sqrt{1 + 4\kappa^2}`, :math:`d = \tau + \sqrt{2\tau}` and
    :math:`m = 1 + 1/(h + 2\kappa) + \sqrt{2\tau}` we use the exact identities :math:`\rho = 2\kappa/d`,
    :math:`1 - \rho = m/d` and return :math:`2w = 2/(r - 1) = 8\kappa d/m^2` and
    :math:`c_{num} = \kappa(r + 1) = 2\kappa + m^2/(4d)`.
    """
    k = kappa.clamp(max=_SAMPLER_KAPPA_MAX)
    one = _s(1.0, k)
    h = torch.mul(k, k).mul_(_s(4.0, k)).add_(one).sqrt_()
    tau = torch.add(h, one)
    sq = torch.mul(tau, _s(2.0, k)).sqrt_()
    d = tau.add_(sq)
    m = h.add_(k, alpha=2.0).reciprocal_().add_(sq).add_(one)
    m2 = m.mul_(m)
    two_w = torch.mul(k, d).mul_(_s(8.0, k)).div_(m2)
    c_num = m2.div_(d).mul_(_s(0.25, k)).add_(k, alpha=2.0)
    return two_w, c_num


# Below this many entries a round proposes several candidates per entry at once (up to 8), so that small
# batches need about two rounds instead of about ten: the cost there is per operation, not per number.
_ROUND_SIZE = 1 << 16
# On a CPU running one thread the first round runs in blocks of this many entries (cpu_block_size).
_CPU_BLOCK = 1 << 17


def _candidates(m: int) -> int:
    """Proposals per entry and round for a round of ``m`` entries."""
    return min(8, -(-_ROUND_SIZE // max(m, 1)))


def _propose(
    two_w: Tensor, c_num: Tensor, generator: torch.Generator | None, candidates: int
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One Best-Fisher round for every element: signed proposal noise, envelope term, acceptance mask.

    With :math:`u_1 \in [-1, 1)` and :math:`a = \pi |u_1| / 2`, the proposal :math:`z = -\cos(2a)` has
    :math:`1 + z = 2\sin^2 a` (no cancellation as :math:`z \to -1`, where the large-:math:`\kappa` samples
    live), so :math:`c = \kappa(r - f) = c_{num} / D` with :math:`D = 1 + 2 w \sin^2 a`. Best & Fisher
    accept when :math:`c(2 - c) > u_2` or :math:`\log(c/u_2) + 1 - c \ge 0`; the first is a squeeze of the
    second, so the exact test :math:`u_2 \le c\,e^{1-c}` is used. The sign of :math:`u_1` is the sign of
    the sample. With ``candidates`` > 1, that many independent proposals per element are drawn and the
    first accepted one is kept, which is the same as proposing them one after the other.
    Returns :math:`(u_1, D, \text{accept})`.
    """
    m = two_w.numel()
    u = torch.empty((2, candidates, m), dtype=two_w.dtype, device=two_w.device)
    u1 = u[0].uniform_(-1.0, 1.0, generator=generator)
    u2 = u[1].uniform_(generator=generator)
    big_d = torch.mul(u1, _s(0.5 * _PI, u1)).sin_()  # sin^2 is even: the sign of u1 does not matter
    big_d = big_d.mul_(big_d).mul_(two_w).add_(_s(1.0, u1))
    c = torch.div(c_num, big_d)
    accept = torch.rsub(c, _s(1.0, c)).exp_().mul_(c) >= u2
    if candidates == 1:
        return u1[0], big_d[0], accept[0]
    # The first accepted candidate: the largest of accept * (candidates - index); argmax along this
    # dimension is two orders of magnitude slower than amax on CPU.
    rank = torch.arange(candidates, 0, -1, dtype=torch.uint8, device=two_w.device).unsqueeze(1)
    best = accept.to(torch.uint8).mul_(rank).amax(0, keepdim=True)
    first = torch.sub(_s(candidates, best), best).clamp_(max=candidates - 1).long()
    return u1.gather(0, first)[0], big_d.gather(0, first)[0], best[0] > 0


def _fused(kappa: Tensor, generator: torch.Generator | None, noise: bool) -> Tensor | None:
    """The fused kernel's draws (flattened), or ``None`` where it does not apply. At any batch size: a VAE's
    batch (100 x 10 concentrations) draws in about 0.2 ms fused against 1.1-1.7 ms eager, whose rejection
    rounds are a dozen small operations each; the first draw builds the extension (once per machine)."""
    return kernels.best_fisher_draw(kappa.detach(), largest_below_pi(kappa.dtype), generator, noise)


def accepted_noise(kappa: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""The accepted signed noise :math:`u \in [-1, 1)` of one Best-Fisher draw per element of ``kappa``
    (flattened), in the dtype of ``kappa`` (float32 or float64), without gradients, from ``generator``
    (torch's global generator by default). The fused kernel where it applies (CPU, float32/float64,
    enabled), else the eager code.
    """
    fused = _fused(kappa, generator, noise=True)
    return fused if fused is not None else _eager_noise(kappa, generator)[0]


def _eager_noise(kappa: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    r""":func:`accepted_noise` in eager torch operations, and the envelope term
    :math:`D = 1 + 2w\sin^2(\pi|u|/2)` each noise was accepted with.

    Vectorized: every round draws fresh proposals for the still-rejected entries only (at most about 1.5
    proposals per sample on average); on a CPU running one thread the first round runs block by block.
    Runs in the dtype of ``kappa`` (float32 or float64), without gradients, from ``generator`` (torch's
    global generator by default).
    """
    with torch.no_grad():
        k = kappa.detach().reshape(-1)
        n = k.numel()
        block = cpu_block_size(k, n, _CPU_BLOCK)
        candidates = _candidates(n)
        if block >= n:
            all_two_w, all_c_num = _proposal_constants(k)
            noise, big_d, accept = _propose(all_two_w, all_c_num, generator, candidates)
            rejected = accept.logical_not_()
        else:
            noise, big_d, all_two_w, all_c_num = torch.empty((4, n), dtype=k.dtype, device=k.device).unbind()
            rejected = torch.empty(n, dtype=torch.bool, device=k.device)
            for lo in range(0, n, block):
                hi = min(lo + block, n)
                two_w, c_num = _proposal_constants(k[lo:hi])
                u1, d_round, accept = _propose(two_w, c_num, generator, candidates)
                noise[lo:hi], big_d[lo:hi], all_two_w[lo:hi], all_c_num[lo:hi] = u1, d_round, two_w, c_num
                torch.logical_not(accept, out=rejected[lo:hi])
        rejected = rejected.nonzero().squeeze(1)
        two_w, c_num = all_two_w.index_select(0, rejected), all_c_num.index_select(0, rejected)
        while rejected.numel() > 0:
            u1, d_round, accept = _propose(two_w, c_num, generator, _candidates(rejected.numel()))
            # Written for all still-rejected entries: those rejected again are overwritten in a later round.
            noise.index_copy_(0, rejected, u1)
            big_d.index_copy_(0, rejected, d_round)
            keep = accept.logical_not_().nonzero().squeeze(1)
            rejected = rejected.index_select(0, keep)
            two_w, c_num = two_w.index_select(0, keep), c_num.index_select(0, keep)
    return noise, big_d


def sample_centred(kappa: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Draw :math:`x \sim \mathrm{vM}(0, \kappa)` in :math:`[-\pi, \pi]`, one per element of ``kappa``
    (:math:`|x|` at most the dtype's largest number below :math:`\pi`).

    :math:`x = \pm\arccos f` with :math:`1 - f = 2\cos^2 a / D`, evaluated as
    :math:`x = \pm 2 \arcsin(\cos a / \sqrt{D})`, accurate for tiny angles (large :math:`\kappa`), where
    :math:`\arccos` of a number near 1 is not. Everything runs in the dtype of ``kappa`` (float32 stays
    float32): the reformulated constants need no extra precision. Random numbers come from torch's global
    generator unless ``generator`` is given, so ``torch.manual_seed`` reproduces the samples. On a CPU the
    fused kernel computes the same sample as :math:`|x| = 2\,\mathrm{atan2}(\beta\cos a, \sin a)` in
    double (:func:`proposal_path`), rounded once.
    """
    if kappa.dtype not in (torch.float32, torch.float64):
        return sample_centred(kappa.float(), generator).to(kappa.dtype)
    if (fused := _fused(kappa, generator, noise=False)) is not None:
        return fused.reshape(kappa.shape)
    noise, big_d = _eager_noise(kappa, generator)
    n = noise.numel()
    block = cpu_block_size(noise, n, _CPU_BLOCK)
    x = torch.empty_like(noise)
    # |x| rounds to float32(pi) > pi when cos a / sqrt(D) rounds to 1 (about 1 in 10,000 samples for
    # kappa <= 1): kept at the dtype's largest number below pi, where wrap_angle leaves it as it is.
    top = largest_below_pi(noise.dtype)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        u = noise[lo:hi]
        xb = torch.mul(u, _s(0.5 * _PI, u)).cos_().clamp_(min=0.0)  # cos a: cos is even
        xb = xb.mul_(big_d[lo:hi].rsqrt()).asin_().mul_(_s(2.0, u)).clamp_(max=top)
        torch.copysign(xb, u, out=x[lo:hi])
    return x.reshape(kappa.shape)


def _beta(kappa: Tensor) -> Tensor:
    r""":math:`\beta = (1 - \rho)/(1 + \rho)` of the proposal, stable for all :math:`\kappa > 0`.

    With :math:`\tau = 1 + s`, :math:`s = \sqrt{1 + 4\kappa^2}` and :math:`A = \tau + \sqrt{2\tau} + 2\kappa`:
    :math:`\beta = (1 + 1/(s + 2\kappa) + \sqrt{2\tau})/A` (no cancellation), so that
    :math:`\beta \to 1 - \kappa` as :math:`\kappa \to 0` and :math:`\beta \sim 1/(2\sqrt\kappa)` as
    :math:`\kappa \to \infty`. Differentiable by autograd.
    """
    s = torch.hypot(torch.ones_like(kappa), 2.0 * kappa)
    tau = 1.0 + s
    sq = torch.sqrt(2.0 * tau)
    return (1.0 + 1.0 / (s + 2.0 * kappa) + sq) / (tau + sq + 2.0 * kappa)


def proposal_path(noise: Tensor, kappa: Tensor) -> tuple[Tensor, Tensor]:
    r"""(x, log pi(u; kappa)): the centred sample as a differentiable function of :math:`\kappa` with the
    accepted noise held fixed, and the log density of that noise, for RSVI (Naesseth et al. 2017).

    With :math:`a = \pi|u|/2`: :math:`|x| = 2\,\mathrm{atan2}(\beta\cos a, \sin a)`, and

    .. math::

        \log\pi = \log q(x; 0, \kappa) + \log\Big|\frac{dx}{d|u|}\Big|,\quad
        \log q = -\frac{2\kappa\beta^2\cos^2 a}{D} - \log(2\pi\, i_{0e}(\kappa)),\quad
        \Big|\frac{dx}{d|u|}\Big| = \frac{\pi\beta}{D},

    :math:`D = \sin^2 a + \beta^2\cos^2 a` (:math:`1 - \cos x = 2\beta^2\cos^2 a/D`). Every term has finite
    gradients for :math:`|u|` in [0, 1]. (The sign of u is an independent fair coin; its factor 1/2 in the
    density does not depend on :math:`\kappa` and is left out.)
    """
    beta = _beta(kappa)
    a = torch.abs(noise) * (0.5 * _PI)
    sin_a, cos_a = torch.sin(a), torch.cos(a)
    bc = beta * cos_a
    x = torch.copysign(2.0 * torch.atan2(bc, sin_a), noise)
    big_d = sin_a * sin_a + bc * bc
    log_q = -kappa * (2.0 * bc * bc / big_d) - _LOG_TWO_PI - log_i0e(kappa)
    return x, log_q + _LOG_PI + torch.log(beta) - torch.log(big_d)
