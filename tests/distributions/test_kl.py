"""vae_lab.distributions.kl: closed-form KLs for von Mises against Monte Carlo and finite differences."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

import vae_lab.distributions.kl  # noqa: F401  (registers the KLs)
from vae_lab.distributions.circular_uniform import CircularUniform
from vae_lab.distributions.von_mises import VonMises

F64 = torch.float64


def _t(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=F64)


def _monte_carlo_kl(p, q, n: int = 100_000) -> tuple[float, float]:
    """Mean and standard error of log p(z) - log q(z), z ~ p."""
    z = p.sample((n,))
    d = p.log_prob(z) - q.log_prob(z)
    return d.mean().item(), d.std().item() / math.sqrt(n)


@pytest.mark.parametrize("kappa", [1e-3, 0.5, 5.0, 10.6, 60.0, 1e3, 1e5])
def test_kl_von_mises_uniform_monte_carlo(kappa):
    torch.manual_seed(0)
    p = VonMises(_t(0.4), _t(kappa))
    q = CircularUniform(dtype=F64)
    mean, se = _monte_carlo_kl(p, q)
    exact = kl_divergence(p, q).item()
    assert abs(mean - exact) < 4 * se + 1e-12, (mean, exact, se)
    assert exact >= 0
    torch.testing.assert_close(kl_divergence(p, q), math.log(2 * math.pi) - p.entropy())


@pytest.mark.parametrize(
    "loc1, kappa1, loc2, kappa2",
    [
        (0.3, 0.5, -0.4, 2.0),
        (1.0, 5.0, 1.2, 0.01),
        (-2.0, 60.0, 3.0, 10.0),
        (0.0, 1e3, 0.01, 900.0),
        (3.0, 1e-3, -3.0, 1e-2),
        (0.1, 2e4, 0.1, 5e4),
    ],
)
def test_kl_von_mises_von_mises_monte_carlo(loc1, kappa1, loc2, kappa2):
    torch.manual_seed(1)
    p = VonMises(_t(loc1), _t(kappa1))
    q = VonMises(_t(loc2), _t(kappa2))
    mean, se = _monte_carlo_kl(p, q)
    exact = kl_divergence(p, q).item()
    assert abs(mean - exact) < 4 * se + 1e-12, (mean, exact, se)
    assert exact >= 0


def test_kl_of_a_distribution_with_itself_is_zero():
    kappa = torch.tensor([1e-6, 0.5, 20.0, 1e6], dtype=F64)
    p = VonMises(torch.tensor([0.0, 1.0, -3.0, 2.0], dtype=F64), kappa)
    torch.testing.assert_close(kl_divergence(p, p), torch.zeros(4, dtype=F64), atol=1e-12, rtol=0)


def _central_differences(fn, args: list[torch.Tensor], h_rel: float = 1e-5) -> list[torch.Tensor]:
    """d fn(args)[j] / d args[i][j] for an elementwise fn (each output depends on its own elements only)."""
    grads = []
    for i, a in enumerate(args):
        g = torch.zeros_like(a)
        for j in range(a.numel()):
            h = h_rel * max(1.0, abs(a.view(-1)[j].item()))
            up = [x.clone() for x in args]
            down = [x.clone() for x in args]
            up[i].view(-1)[j] += h
            down[i].view(-1)[j] -= h
            g.view(-1)[j] = (fn(*up).view(-1)[j] - fn(*down).view(-1)[j]) / (2 * h)
        grads.append(g)
    return grads


KAPPA_GRID = [1e-3, 0.3, 5.0, 10.4, 10.6, 49.0, 51.0, 400.0, 2e4]


def test_kl_gradients_finite_differences():
    """Gradients w.r.t. locs and concentrations against central finite differences, float64."""
    kappa1 = torch.tensor(KAPPA_GRID, dtype=F64)
    kappa2 = torch.tensor(KAPPA_GRID[::-1], dtype=F64) * 1.3
    loc1 = torch.linspace(-3.0, 3.0, len(KAPPA_GRID), dtype=F64)
    loc2 = torch.linspace(2.0, -1.0, len(KAPPA_GRID), dtype=F64)

    def kl_vm_vm(l1, k1, l2, k2):
        return kl_divergence(VonMises(l1, k1), VonMises(l2, k2))

    def kl_vm_u(l1, k1):
        return kl_divergence(VonMises(l1, k1), CircularUniform(k1.shape, dtype=F64))

    for fn, args in ((kl_vm_vm, [loc1, kappa1, loc2, kappa2]), (kl_vm_u, [loc1, kappa1])):
        leaves = [a.clone().requires_grad_() for a in args]
        fn(*leaves).sum().backward()
        numeric = _central_differences(fn, args)
        for leaf, num in zip(leaves, numeric, strict=True):
            grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)  # KL(vM || U) has no loc
            torch.testing.assert_close(grad, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_finite_over_the_range(dtype):
    kappa = torch.logspace(-6, 6, 25, dtype=dtype).requires_grad_()
    loc = torch.linspace(-3, 3, 25, dtype=dtype).requires_grad_()
    p = VonMises(loc, kappa)
    q = VonMises(torch.zeros(25, dtype=dtype), kappa.detach().flip(0))
    total = kl_divergence(p, q).sum() + kl_divergence(p, CircularUniform((25,), dtype=dtype)).sum()
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(kappa.grad).all() and torch.isfinite(loc.grad).all()
    if dtype == torch.float32:  # agrees with the float64 value
        ref = kl_divergence(
            VonMises(loc.detach().double(), kappa.detach().double()), CircularUniform((25,), dtype=F64)
        )
        torch.testing.assert_close(
            kl_divergence(p, CircularUniform((25,), dtype=dtype)).double(), ref, rtol=1e-5, atol=1e-6
        )


def test_kl_broadcasts_batch_shapes():
    p = VonMises(torch.zeros(2, 3), torch.ones(2, 3))
    assert kl_divergence(p, CircularUniform((2, 3))).shape == (2, 3)
    assert kl_divergence(p, CircularUniform()).shape == (2, 3)
    assert kl_divergence(p, VonMises(torch.zeros(3), torch.ones(3))).shape == (2, 3)


def test_torch_von_mises_pairs_unchanged():
    """Registration is on vae_lab's subclass only: torch's own VonMises pairs dispatch as before."""
    t = torch.distributions.VonMises(torch.tensor(0.0), torch.tensor(1.0))
    ours = VonMises(torch.tensor(0.0), torch.tensor(1.0))
    for p, q in ((t, t), (t, CircularUniform()), (ours, t)):
        with pytest.raises(NotImplementedError):
            kl_divergence(p, q)
