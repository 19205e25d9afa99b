"""The Dirichlet topic model (model=lda): topic decoder, word-count likelihood, perplexity, prior burn-in,
and the figurnov2018/lda_20news preset."""

from __future__ import annotations

import functools
import math

import pytest
import pytorch_lightning as pl
import torch
from conftest import quiet_trainer
from hydra import compose, initialize_config_dir
from torch.distributions import Dirichlet, Multinomial

from vae_lab.build import build
from vae_lab.config import CONF_DIR
from vae_lab.data.loader import TensorBatches
from vae_lab.errors import ConfigError
from vae_lab.estimators import ImplicitEstimator, RSVIEstimator
from vae_lab.model.likelihoods import WordCounts
from vae_lab.model.networks import MLP
from vae_lab.model.perplexity import perplexity
from vae_lab.model.posteriors import DirichletHead, GaussianHead, inverse_softplus
from vae_lab.model.priors import DirichletPrior, NormalPrior
from vae_lab.model.topics import TopicDecoder
from vae_lab.model.vae import VAE

K, V = 4, 12


def lda(prior=None, estimator=None, posterior=None, **kwargs) -> VAE:
    return VAE(
        posterior=posterior or DirichletHead(K, min_concentration=0.1),
        prior=prior or DirichletPrior(K, alpha=0.7),
        estimator=estimator or ImplicitEstimator(),
        encoder=functools.partial(MLP, hidden=[8]),
        decoder=TopicDecoder,
        likelihood=WordCounts(),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        input_dim=V,
        latent_dim=K,
        **kwargs,
    )


# -- decoder and likelihood ---------------------------------------------------------------------------
def test_decoder_log_probabilities_normalize_over_the_vocabulary_and_match_float64():
    torch.manual_seed(0)
    decoder = TopicDecoder(K, V, init_std=2.0)
    theta = Dirichlet(torch.full((K,), 0.3)).sample((3, 5))  # (S, B, K)
    theta[0, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # exact zeros, as float32 Dirichlet samples have
    log_p = decoder(theta)
    assert log_p.shape == (3, 5, V)
    torch.testing.assert_close(log_p.logsumexp(-1), torch.zeros(3, 5), atol=2e-6, rtol=0)
    topics = decoder.topics.detach().double()
    exact = (theta.double() @ topics.softmax(-1)).log()
    torch.testing.assert_close(log_p.double(), exact, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(decoder.topic_word_probs().sum(-1), torch.ones(K))


def test_decoder_gradient_is_finite_where_theta_has_exact_zeros():
    decoder = TopicDecoder(K, V)
    theta = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]], requires_grad=True)
    x = torch.ones(2, V)
    WordCounts().log_prob(x, decoder(theta)).sum().backward()
    assert torch.isfinite(theta.grad).all() and torch.isfinite(decoder.topics.grad).all()


def test_word_counts_is_the_multinomial_without_its_coefficient():
    torch.manual_seed(1)
    probs = torch.rand(6, V).double()
    probs /= probs.sum(-1, keepdim=True)
    x = torch.poisson(torch.full((6, V), 2.0)).double()
    n = x.sum(-1)
    multinomial = torch.stack([Multinomial(int(n[i]), probs[i]).log_prob(x[i]) for i in range(6)])
    coefficient = torch.lgamma(n + 1) - torch.lgamma(x + 1).sum(-1)
    torch.testing.assert_close(WordCounts().log_prob(x, probs.log()), multinomial - coefficient)
    # logits: normalized by log-softmax first (NVDM-style softmax decoder)
    logits = probs.log() + 3.0
    torch.testing.assert_close(WordCounts(from_logits=True).log_prob(x, logits), multinomial - coefficient)


def test_topic_decoder_needs_a_dirichlet_posterior():
    with pytest.raises(ConfigError, match="posterior=dirichlet"):
        lda(posterior=GaussianHead(K), prior=NormalPrior(K))


# -- perplexity ---------------------------------------------------------------------------------------
def dirichlet_kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """KL(Dir(a) || Dir(b)) written out (not torch's registered KL)."""
    a0, b0 = a.sum(-1), b.sum(-1)
    return (
        torch.lgamma(a0)
        - torch.lgamma(a).sum(-1)
        - torch.lgamma(b0)
        + torch.lgamma(b).sum(-1)
        + ((a - b) * (torch.digamma(a) - torch.digamma(a0).unsqueeze(-1))).sum(-1)
    )


def test_perplexity_matches_a_hand_computed_value_over_uneven_batches():
    """Identical topics make p(w|theta) = beta_w for every theta, and a constant encoder makes
    q = Dir(a) for every document: then ELBO_d = sum_w n_dw log beta_w - KL(Dir(a) || Dir(alpha)) exactly."""
    torch.manual_seed(0)
    model = lda(prior=DirichletPrior(K, alpha=0.7))
    a = torch.tensor([0.5, 1.0, 2.0, 3.0])
    beta_logits = torch.linspace(-1.0, 1.0, V)
    with torch.no_grad():
        for layer in model.encoder:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
        model.encoder[-1].bias.copy_(torch.tensor([inverse_softplus(float(v)) for v in a]))
        model.decoder.topics.copy_(beta_logits.expand(K, V))
    docs = torch.tensor(
        [
            [3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # no tokens: left out of the perplexity
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            [0, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # long, of an improbable word
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],  # one token of the likeliest word
        ],
        dtype=torch.float32,
    )
    log_beta = torch.log_softmax(beta_logits.double(), -1)
    elbo = docs.double() @ log_beta - dirichlet_kl(a.double(), torch.full((K,), 0.7).double())
    n = docs.sum(-1).double()
    by_hand = math.exp(sum(-elbo[d] / n[d] for d in (0, 2, 3, 4)) / 4)

    trainer = quiet_trainer()
    for batch_size in (2, 3):  # batches of 2, 2, 1 and of 3, 2: the figure must not depend on them
        trainer.validate(model, dataloaders=TensorBatches(docs, batch_size=batch_size), verbose=False)
        assert trainer.callback_metrics["val/perplexity"].item() == pytest.approx(by_hand, rel=1e-5)
    trainer.test(model, dataloaders=TensorBatches(docs, batch_size=3), verbose=False)
    assert trainer.callback_metrics["test/perplexity"].item() == pytest.approx(by_hand, rel=1e-5)
    assert perplexity(elbo, docs.double()) == pytest.approx(by_hand, rel=1e-12)
    # teeth: a per-token (rather than per-document) average is a different number here (27.7 vs 21.6)
    pooled = math.exp(float(-elbo.sum() / n.sum()))
    assert abs(pooled - by_hand) > 0.2 * by_hand


# -- prior burn-in ------------------------------------------------------------------------------------
class AlphaTrace(pl.Callback):
    def __init__(self):
        self.alphas, self.encoder_weights = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.alphas.append(pl_module.prior.alpha.detach().clone())
        self.encoder_weights.append(pl_module.encoder[0].weight.detach().clone())


@pytest.mark.parametrize("estimator", [ImplicitEstimator(), RSVIEstimator(B=1)])
def test_learnable_prior_is_frozen_for_freeze_steps_and_trained_after(estimator):
    torch.manual_seed(0)
    freeze = 3
    model = lda(
        prior=DirichletPrior(K, alpha=0.7, learnable=True, min_alpha=0.1, freeze_steps=freeze),
        estimator=estimator,
    )
    initial = model.prior.alpha.detach().clone()
    weights = [model.encoder[0].weight.detach().clone()]
    docs = torch.poisson(torch.full((40, V), 1.5))
    trace = AlphaTrace()
    trainer = quiet_trainer(max_steps=freeze + 3, callbacks=[trace], limit_val_batches=0)
    trainer.fit(model, train_dataloaders=TensorBatches(docs, batch_size=8, shuffle=True))
    assert len(trace.alphas) == freeze + 3
    weights += trace.encoder_weights
    for step in range(freeze):
        assert torch.equal(trace.alphas[step], initial), step
        assert not torch.equal(weights[step + 1], weights[step]), step  # the rest of the model trains
    for step in range(freeze, freeze + 3):
        assert not torch.equal(trace.alphas[step], trace.alphas[step - 1]), step
    # Adam saw alpha only after the burn-in (no moment updates with zero gradients before)
    state = trainer.optimizers[0].state
    assert int(state[model.prior.raw_alpha]["step"]) == 3
    assert int(state[model.encoder[0].weight]["step"]) == freeze + 3


def test_freeze_steps_must_be_a_non_negative_integer():
    with pytest.raises(ConfigError, match="freeze_steps"):
        DirichletPrior(K, learnable=True, freeze_steps=-1)


# -- the preset ---------------------------------------------------------------------------------------
def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_lda_20news_preset_has_the_papers_settings_and_takes_the_estimator_from_the_command_line():
    cfg = compose_train(["experiment=figurnov2018/lda_20news", "estimator=rsvi", "model.estimator.B=10"])
    assert cfg.model.estimator._target_.endswith("RSVIEstimator") and cfg.model.estimator.B == 10
    assert cfg.model.latent_dim == 50 and list(cfg.model.encoder.hidden) == [300, 300, 300]
    assert cfg.model.optimizer.lr == 3e-4 and cfg.data.batch_size == 32
    assert cfg.trainer.max_steps == 180_000 and cfg.trainer.max_epochs == -1
    prior, posterior = cfg.model.prior, cfg.model.posterior
    assert prior.alpha == 0.7 and prior.learnable and prior.freeze_steps == 120_000
    assert (prior.min_alpha, prior.max_alpha) == (1e-3, 1e3)  # the paper's code's clip
    assert (posterior.min_concentration, posterior.max_concentration) == (1e-3, 1e3)
    assert "topic_words" in cfg.callbacks and "model_checkpoint" in cfg.callbacks
    datamodule, model = build(cfg)  # builds without reading the data
    assert datamodule.input_dim == 1995
    assert model.counts and model.prior_freeze_steps == 120_000
    assert model.decoder.topics.shape == (50, 1995)
    # default estimator: implicit
    default = compose_train(["experiment=figurnov2018/lda_20news"])
    assert default.model.estimator._target_.endswith("ImplicitEstimator")
