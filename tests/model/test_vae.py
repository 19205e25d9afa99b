"""The VAE's objective and its importance-weighted likelihood bound, on a linear-Gaussian model whose
marginal likelihood is known in closed form: p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), so
p(x) = N(b, W W^T + s^2 I)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from vae_lab.estimators import ImplicitEstimator, ReparamEstimator, ScoreFunctionEstimator
from vae_lab.model.likelihoods import Gaussian
from vae_lab.model.networks import MLP
from vae_lab.model.posteriors import GaussianHead
from vae_lab.model.priors import NormalPrior
from vae_lab.model.vae import VAE

D, K, S = 5, 2, 0.7


def linear_gaussian_vae(estimator=None) -> tuple[VAE, MultivariateNormal]:
    """A VAE whose decoder is linear and whose encoder gives a deliberately imperfect posterior:
    the exact posterior mean with scales 1.3 times the exact ones."""
    torch.manual_seed(0)
    vae = VAE(
        posterior=GaussianHead(K, min_scale=1e-6),
        prior=NormalPrior(K),
        estimator=estimator or ReparamEstimator(),
        encoder=functools.partial(MLP, hidden=[]),
        decoder=functools.partial(MLP, hidden=[]),
        likelihood=Gaussian(S),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        input_dim=D,
        latent_dim=K,
    ).double()
    W, b = vae.decoder[0].weight.detach(), vae.decoder[0].bias.detach()
    # exact posterior: cov = (I + W^T W / s^2)^-1, mean = cov W^T (x - b) / s^2
    cov = torch.linalg.inv(torch.eye(K, dtype=W.dtype) + W.T @ W / S**2)
    scale = 1.3 * cov.diagonal().sqrt()
    with torch.no_grad():
        vae.encoder[0].weight.copy_(torch.cat([cov @ W.T / S**2, torch.zeros(K, D, dtype=W.dtype)]))
        vae.encoder[0].bias.copy_(torch.cat([-(cov @ W.T @ b) / S**2, torch.log(torch.expm1(scale - 1e-6))]))
    marginal = MultivariateNormal(b, W @ W.T + S**2 * torch.eye(D, dtype=W.dtype))
    return vae, marginal


def small_vae(**kwargs) -> VAE:
    """A Gaussian VAE on 4-dimensional Bernoulli data with explicit gradients; keyword arguments replace
    the defaults."""
    from conftest import tiny_vae

    return tiny_vae(**{"estimator": ReparamEstimator(), "input_dim": 4, **kwargs})


def test_iw_bound_matches_the_exact_log_likelihood_within_its_standard_error():
    vae, marginal = linear_gaussian_vae()
    x = marginal.sample((100,))
    repeats = torch.stack([vae.iw_log_likelihood(x, k=2000, chunk=500).mean() for _ in range(20)])
    exact = marginal.log_prob(x).mean()
    se = repeats.std() / math.sqrt(len(repeats))
    assert abs(repeats.mean() - exact) < 4 * se + 1e-9, (repeats.mean().item(), exact.item(), se.item())
    assert se < 5e-3  # the check has teeth: the bound is resolved to a few thousandths of a nat


def test_iw_bound_does_not_get_worse_as_k_grows_and_is_at_least_the_elbo():
    vae, marginal = linear_gaussian_vae()
    x = marginal.sample((200,))
    means, ses = [], []
    for k in (1, 10, 100):
        runs = torch.stack([vae.iw_log_likelihood(x, k=k, chunk=50).mean() for _ in range(10)])
        means.append(runs.mean())
        ses.append(runs.std() / math.sqrt(len(runs)))
    elbo = torch.stack([vae.elbo(x)["elbo"].mean() for _ in range(10)]).mean()
    exact = marginal.log_prob(x).mean()
    for lo, hi, se_lo, se_hi in zip(means, means[1:], ses, ses[1:], strict=False):
        assert hi > lo - 4 * math.hypot(se_lo, se_hi)
    assert means[-1] - elbo > 0.0 and means[-1] <= exact + 4 * ses[-1]
    assert means[-1] - means[0] > 4 * math.hypot(ses[0], ses[-1])  # a real, resolved improvement


def test_chunking_does_not_change_the_bound():
    vae, marginal = linear_gaussian_vae()
    x = marginal.sample((10,))
    torch.manual_seed(1)
    one = vae.iw_log_likelihood(x, k=60, chunk=60)
    torch.manual_seed(1)
    chunks = torch.cat([vae.q(x).sample((20,)) for _ in range(3)])
    log_w = vae.log_likelihood(x, chunks) + vae.prior().log_prob(chunks) - vae.q(x).log_prob(chunks)
    torch.testing.assert_close(one, log_w.logsumexp(0) - math.log(60))


def test_analytic_and_monte_carlo_kl_agree_in_expectation():
    vae, marginal = linear_gaussian_vae()
    x = marginal.sample((50,)).repeat(40, 1)
    analytic = vae.elbo(x)["elbo"].mean()
    vae.analytic_kl = False
    mc = vae.elbo(x)["elbo"]
    assert abs(mc.mean() - analytic) < 4 * mc.std() / math.sqrt(len(mc))


@pytest.mark.parametrize(
    "estimator", [ReparamEstimator(), ImplicitEstimator(), ScoreFunctionEstimator("none")]
)
def test_surrogate_value_is_the_elbo(estimator):
    vae, marginal = linear_gaussian_vae(estimator)
    x = marginal.sample((8,))
    torch.manual_seed(3)
    terms = vae.elbo(x)
    torch.testing.assert_close(terms["surrogate"], terms["elbo"])
    torch.testing.assert_close(terms["elbo"], terms["recon"] - terms["kl"])


def test_unsupported_estimator_fails_at_construction_with_the_supported_list():
    from vae_lab.errors import ConfigError
    from vae_lab.model.posteriors import DirichletHead
    from vae_lab.model.priors import DirichletPrior

    with pytest.raises(ConfigError, match="implicit.*rsvi.*score"):
        small_vae(posterior=DirichletHead(3), prior=DirichletPrior(3), latent_dim=3)


def test_bad_learning_rate_fails_at_construction():
    from vae_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="optimizer"):
        small_vae(optimizer=functools.partial(torch.optim.Adam, lr=-1.0))


def test_a_non_finite_loss_stops_training_naming_the_step():
    vae, marginal = linear_gaussian_vae()
    with torch.no_grad():
        vae.decoder[0].bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="step 0"):
        vae.training_step(marginal.sample((4,)), 0)


@pytest.mark.parametrize("analytic", [True, False])
@pytest.mark.parametrize("weight", [0.0, 0.25, 1.0])
def test_kl_weight_scales_only_the_kl_term_of_the_surrogate(analytic, weight):
    """With the same random numbers, surrogate(weight) = recon - weight * KL, while the logged ELBO
    stays the unweighted bound recon - KL."""
    vae, marginal = linear_gaussian_vae()
    vae.analytic_kl = analytic
    x = marginal.sample((8,))
    torch.manual_seed(5)
    full = vae.elbo(x)
    torch.manual_seed(5)
    weighted = vae.elbo(x, kl_weight=weight)
    torch.testing.assert_close(weighted["elbo"], full["elbo"])
    torch.testing.assert_close(weighted["kl"], full["kl"])
    torch.testing.assert_close(weighted["surrogate"], full["recon"] - weight * full["kl"])
    # and its gradient is that of recon - weight * KL: with weight 0 the prior term has no pull
    if analytic:
        mean_grad = torch.autograd.grad(weighted["surrogate"].sum(), vae.encoder[0].bias)[0]
        torch.manual_seed(5)
        recon = vae.elbo(x, kl_weight=0.0)["surrogate"].sum()
        kl = vae.elbo(x)["kl"].sum()
        expected = torch.autograd.grad(recon - weight * kl, vae.encoder[0].bias)[0]
        torch.testing.assert_close(mean_grad, expected)


@pytest.mark.parametrize("estimator", [ReparamEstimator(), ImplicitEstimator()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_at_weight_one_the_surrogate_and_its_gradient_are_those_of_the_weighted_form_bit_for_bit(
    estimator, dtype
):
    """The Python weight 1.0 skips the multiply and the surrogate shares its mean with the reconstruction
    term; a tensor weight of 1 takes the multiply. Same random numbers: the same bits, values and
    gradients, and recon is the mean of log p(x|z) at the drawn z."""
    vae, marginal = linear_gaussian_vae(estimator)
    vae = vae.to(dtype)
    x = marginal.sample((8,)).to(dtype)
    runs = []
    for weight in (1.0, torch.tensor(1.0, dtype=dtype)):
        torch.manual_seed(7)
        terms = vae.elbo(x, kl_weight=weight)
        grads = torch.autograd.grad(terms["surrogate"].sum(), list(vae.parameters()))
        runs.append((terms, grads))
    (plain, plain_grads), (multiplied, multiplied_grads) = runs
    for name in ("surrogate", "elbo", "recon", "kl"):
        assert torch.equal(plain[name], multiplied[name]), name
    assert all(torch.equal(a, b) for a, b in zip(plain_grads, multiplied_grads, strict=True))
    torch.manual_seed(7)
    z = vae.q(x).rsample((1,))
    torch.testing.assert_close(plain["recon"], vae.log_likelihood(x, z).mean(0), rtol=0, atol=0)


def test_kl_warmup_weight_rises_linearly_to_one():
    vae, _ = linear_gaussian_vae()
    assert vae.kl_weight() == 1.0  # no warm-up: the ELBO from the first step
    vae.kl_warmup_steps = 100
    steps = {0: 0.0, 25: 0.25, 100: 1.0, 500: 1.0}
    with pytest.MonkeyPatch.context() as mp:
        for step, expected in steps.items():
            mp.setattr(VAE, "global_step", property(lambda self, s=step: s))
            assert vae.kl_weight() == pytest.approx(expected)


def test_kl_warmup_steps_must_be_a_non_negative_integer():
    from vae_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="kl_warmup_steps"):
        small_vae(kl_warmup_steps=-5)
    small_vae(kl_warmup_steps=10)  # valid


@pytest.mark.parametrize("prior_name", ["GammaPrior", "CircularUniformPrior", "UnitUniformPrior"])
def test_a_prior_that_does_not_cover_the_posterior_fails_at_construction(prior_name):
    from vae_lab.errors import ConfigError
    from vae_lab.model import priors

    with pytest.raises(ConfigError, match=f"prior: {prior_name} does not cover .* gaussian posterior"):
        small_vae(prior=getattr(priors, prior_name)(2))


def test_matching_pairs_pass_the_support_check_without_touching_the_global_random_stream():
    from vae_lab.model.posteriors import BetaHead, GammaHead, VonMisesHead
    from vae_lab.model.priors import CircularUniformPrior, GammaPrior, UnitUniformPrior

    models = [
        small_vae(posterior=VonMisesHead(2), prior=CircularUniformPrior(2), estimator=ImplicitEstimator()),
        small_vae(posterior=GammaHead(2), prior=GammaPrior(2), estimator=ImplicitEstimator()),
        small_vae(posterior=BetaHead(2), prior=UnitUniformPrior(2), estimator=ImplicitEstimator()),
    ]
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    for model in models:
        model._check_prior_support(model.posterior(torch.zeros(1, model.posterior.param_dim)))
    torch.testing.assert_close(torch.rand(3), expected)


def test_a_bad_likelihood_setting_is_a_config_error_naming_the_key():
    from vae_lab.errors import ConfigError
    from vae_lab.model.likelihoods import Gaussian

    with pytest.raises(ConfigError, match=r"^scale=0 is not allowed"):
        Gaussian(scale=0)
