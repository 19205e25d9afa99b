r"""The chunked importance-weighted estimate of log p(x) (:mod:`vae_lab.model.iw`):

    L_K(x) = logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,   z_k ~ q(z|x).

Chunking changes nothing but memory (same samples, any chunk size, dividing K or not); the fused Bernoulli
likelihood is ``binary_cross_entropy_with_logits``; with q the exact posterior of a linear-Gaussian model
every weight is p(x), so the estimate is the closed-form log p(x) with zero variance; and the memory the
estimate holds at once does not grow with K at a fixed chunk size (measured by
:class:`~vae_lab.model.iw.TensorPeak`, which sees the growth when the chunk is all of K).
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from conftest import tiny_vae
from torch import nn
from torch.distributions import MultivariateNormal

from vae_lab.estimators import ImplicitEstimator, ReparamEstimator, RSVIEstimator
from vae_lab.model.iw import TensorPeak, iw_log_likelihood
from vae_lab.model.likelihoods import Gaussian
from vae_lab.model.networks import MLP
from vae_lab.model.posteriors import BetaHead, GammaHead, GaussianHead, VonMisesHead, inverse_softplus
from vae_lab.model.priors import CircularUniformPrior, GammaPrior, NormalPrior, UnitUniformPrior
from vae_lab.model.vae import VAE

FAMILIES = {
    "gaussian": lambda: (GaussianHead(3), NormalPrior(3)),
    "vonmises": lambda: (VonMisesHead(3), CircularUniformPrior(3)),
    "gamma": lambda: (GammaHead(3), GammaPrior(3)),
    "beta": lambda: (BetaHead(3), UnitUniformPrior(3)),
}
D = 12  # data dimension of the Bernoulli models


def bernoulli_vae(family: str, hidden=(8, 8)) -> VAE:
    posterior, prior = FAMILIES[family]()
    estimator = RSVIEstimator() if family == "vonmises" else ImplicitEstimator()
    net = functools.partial(MLP, hidden=list(hidden))
    return tiny_vae(
        posterior=posterior, prior=prior, estimator=estimator, encoder=net, decoder=net, input_dim=D
    ).double()


def binary_data(rows: int) -> torch.Tensor:
    return torch.bernoulli(
        torch.full((rows, D), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(1)
    )


def drawn(q, k: int):
    """All k samples of q drawn at once, handed out in order: every chunking sees the same samples."""
    samples, given = q.sample((k,)), [0]

    def sample(_q, n: int) -> torch.Tensor:
        start = given[0]
        given[0] += n
        return samples[start : start + n].clone()  # a new tensor, as a fresh draw is

    return samples.clone(), sample


def reference(model: VAE, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """L_K in one piece, from the model's own log-likelihood (binary_cross_entropy_with_logits)."""
    with torch.no_grad():
        q, p = model.q(x), model.prior()
        log_w = model.log_likelihood(x, z) + p.log_prob(z) - q.log_prob(z)
        return log_w.logsumexp(0) - math.log(len(z))


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("chunk", [1, 7, 32, 100, 250])
def test_chunked_estimate_equals_the_unchunked_one_on_the_same_samples(family, chunk):
    model, x, k = bernoulli_vae(family), binary_data(5), 100
    torch.manual_seed(2)
    with torch.no_grad():
        z, sample = drawn(model.q(x), k)
    chunked = iw_log_likelihood(model, x, k, chunk, sample=sample)
    torch.testing.assert_close(chunked, reference(model, x, z), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("hidden", [(8, 8), ()])
def test_fused_bernoulli_form_is_the_models_likelihood(family, hidden):
    model, x, k = bernoulli_vae(family, hidden), binary_data(6), 40
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        model, x = model.to(dtype), x.to(dtype)
        torch.manual_seed(3)
        fused = iw_log_likelihood(model, x, k, 9)
        torch.manual_seed(3)
        plain = iw_log_likelihood(model, x, k, 9, fused=False)
        assert fused.dtype == dtype
        torch.testing.assert_close(fused, plain, rtol=0, atol=tol)


def test_the_estimate_is_an_ordinary_tensor_and_the_same_seed_gives_the_same_estimate():
    model, x = bernoulli_vae("gaussian"), binary_data(4)
    torch.manual_seed(4)
    a = model.iw_log_likelihood(x, k=30, chunk=7)
    torch.manual_seed(4)
    b = model.iw_log_likelihood(x, k=30, chunk=7)
    assert not a.is_inference() and not a.requires_grad and a.shape == (4,)
    assert torch.equal(a, b)
    a += 1.0  # an inference tensor would refuse this outside inference mode


def exact_posterior_vae(latent: int = 3, dim: int = 7, noise: float = 0.5) -> tuple[VAE, MultivariateNormal]:
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I) with orthogonal columns of W, so the exact posterior
    N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^-1, is diagonal: the encoder below outputs it."""
    torch.manual_seed(0)
    w = torch.linalg.qr(torch.randn(dim, latent, dtype=torch.float64))[0] * torch.tensor([2.0, 0.7, 1.3])
    b = torch.randn(dim, dtype=torch.float64)
    cov = torch.linalg.inv(torch.eye(latent, dtype=torch.float64) + w.T @ w / noise**2)
    assert torch.allclose(cov, torch.diag(cov.diagonal()))
    min_scale = 1e-6
    raw_scale = torch.tensor(
        [inverse_softplus(float(s) - min_scale) for s in cov.diagonal().sqrt()], dtype=torch.float64
    )

    def encoder(in_dim: int, out_dim: int) -> nn.Module:
        layer = nn.Linear(in_dim, out_dim).double()
        with torch.no_grad():
            layer.weight.copy_(torch.cat([cov @ w.T / noise**2, torch.zeros(latent, in_dim)]))
            layer.bias.copy_(torch.cat([-(cov @ w.T @ b) / noise**2, raw_scale]))
        return layer

    def decoder(in_dim: int, out_dim: int) -> nn.Module:
        layer = nn.Linear(in_dim, out_dim).double()
        with torch.no_grad():
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        return layer

    vae = VAE(
        posterior=GaussianHead(latent, min_scale=min_scale),
        prior=NormalPrior(latent),
        estimator=ReparamEstimator(),
        encoder=encoder,
        decoder=decoder,
        likelihood=Gaussian(noise),
        optimizer=functools.partial(torch.optim.Adam),
        input_dim=dim,
        latent_dim=latent,
    ).double()
    return vae, MultivariateNormal(b, w @ w.T + noise**2 * torch.eye(dim, dtype=torch.float64))


@pytest.mark.parametrize(("k", "chunk"), [(1, 1), (50, 7), (500, 64)])
def test_with_the_exact_posterior_the_estimate_is_the_exact_log_likelihood(k, chunk):
    vae, marginal = exact_posterior_vae()
    x = marginal.sample((20,))
    exact = marginal.log_prob(x)
    for seed in (0, 1):  # zero variance: every draw gives log p(x)
        torch.manual_seed(seed)
        torch.testing.assert_close(vae.iw_log_likelihood(x, k=k, chunk=chunk), exact, rtol=0, atol=1e-9)
    with torch.no_grad():  # each weight on its own, not only their mean, is p(x)
        q = vae.q(x)
        z = q.sample((5,))
        log_w = vae.log_likelihood(x, z) + vae.prior().log_prob(z) - q.log_prob(z)
    torch.testing.assert_close(log_w, exact.expand_as(log_w), rtol=0, atol=1e-9)


def held_memory(model: VAE, x: torch.Tensor, k: int, chunk: int) -> TensorPeak:
    torch.manual_seed(5)
    with TensorPeak() as peak:
        model.iw_log_likelihood(x, k=k, chunk=chunk)
    return peak


@pytest.mark.parametrize("family", ["gaussian", "vonmises"])
def test_memory_does_not_grow_with_k_at_a_fixed_chunk(family):
    model, x, chunk = bernoulli_vae(family), binary_data(16), 10
    small, large = held_memory(model, x, 50, chunk), held_memory(model, x, 1000, chunk)
    # equal up to the few index tensors of rejection sampling (von Mises), whose sizes are random
    assert large.peak <= 1.05 * small.peak and large.largest == small.largest
    # the largest tensor is one chunk of logits (chunk, B, D), of hidden units (chunk, B, H + 1), or of
    # the von Mises sampler's proposals (2 x up to 8 candidates per latent entry in small rounds)
    assert small.largest <= chunk * len(x) * max(D, 9, 2 * 8 * 3) * 8
    # the measure sees growth where there is some: with all of K in one chunk, 20 times the samples hold
    # several times the memory (not 20 times with von Mises, whose sampler's small rounds propose more)
    unchunked_small, unchunked_large = held_memory(model, x, 50, 50), held_memory(model, x, 1000, 1000)
    assert unchunked_large.peak > 4 * unchunked_small.peak
    assert unchunked_large.largest > 4 * unchunked_small.largest


def test_the_mnist_preset_scores_the_whole_test_set_in_bounded_chunks():
    from hydra import compose, initialize_config_dir

    from vae_lab.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=figurnov2018/vae_mnist"])
    assert cfg.trainer.get("limit_test_batches") in (None, 1.0)  # all 10,000 test images
    assert cfg.model.iw_samples == 5000
    # one chunk of logits: iw_chunk x eval_batch_size x 784 float32 values, at most 32 MiB
    assert cfg.model.iw_chunk * cfg.data.eval_batch_size * 784 * 4 <= 32 * 2**20
