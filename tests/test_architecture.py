"""The README's "Architecture" section, checked: a new latent family is one distribution, one posterior
head and one posterior config, and the rest follows (which estimators apply, which priors fit, training).

The family here, log-normal latents, is defined in this file and its config is put in Hydra's config
store, so nothing in vae_lab/ or conf/ knows its name.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from conftest import quiet_trainer
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from torch import Tensor
from torch.distributions import Distribution, Independent, LogNormal

from vae_lab.build import build
from vae_lab.config import CONF_DIR, estimators_for
from vae_lab.errors import ConfigError
from vae_lab.model.posteriors import PosteriorHead


class LogNormalHead(PosteriorHead):
    """q(z|x) = prod LogNormal(mu, sigma) on (0, inf)^d: torch's family, explicitly reparameterized."""

    family = "lognormal"
    outputs_per_dim = 2

    def forward(self, params: Tensor) -> Distribution:
        loc, raw = params.chunk(2, dim=-1)
        return Independent(LogNormal(loc, torch.nn.functional.softplus(raw) + 1e-3), 1)


ConfigStore.instance().store(
    group="posterior",
    name="lognormal_test",
    package="model.posterior",
    node={
        "defaults": [{"/prior@_global_.natural_prior": "gamma"}, "_self_"],
        "_target_": f"{__name__}.LogNormalHead",
        "latent_dim": "${model.latent_dim}",
    },
)


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=["posterior=lognormal_test", *overrides])


def test_estimators_and_priors_follow_from_the_distribution():
    _, model = build(compose_train(["estimator=reparam", "model.latent_dim=2"]))
    q = model.q(torch.zeros(1, model.encoder[0].in_features))
    # an explicit rsample, a CDF (implicit gradients through it) and a density; no rejection sampler
    assert estimators_for(q) == ["implicit", "reparam", "score"]
    with pytest.raises(ConfigError, match="estimators for the lognormal posterior: implicit, reparam, score"):
        build(compose_train(["estimator=rsvi"]))
    build(compose_train(["estimator=score", "prior=normal"]))  # N(0, 1) covers (0, inf)
    with pytest.raises(ConfigError, match="does not cover the support of the lognormal posterior"):
        build(compose_train(["estimator=score", "prior=dirichlet"]))


def test_the_new_family_trains():
    cfg = compose_train(["estimator=reparam", "model.latent_dim=2", "data.batch_size=100"])
    pl.seed_everything(0, verbose=False)
    datamodule, model = build(cfg)
    trainer = quiet_trainer(max_steps=5, limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 5
