"""Every option of every config group composes, and its objects can be built."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from vae_lab.config import CONF_DIR, group_options

GROUPS = ["data", "model", "posterior", "prior", "estimator", "trainer", "logger", "callbacks"]


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=False)


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_group_option_composes(group, option):
    cfg = compose_train([f"{group}={option}"])
    assert cfg[group] is not None


@pytest.mark.parametrize("option", group_options("posterior"))
def test_each_posterior_and_its_natural_prior_build(option):
    cfg = compose_train([f"posterior={option}"])
    head, prior = instantiate(cfg.posterior), instantiate(cfg.prior)
    assert head.family == option
    assert prior().event_shape == (cfg.model.latent_dim,)


@pytest.mark.parametrize("option", group_options("estimator"))
def test_each_estimator_builds(option):
    estimator = instantiate(compose_train([f"estimator={option}"]).estimator)
    assert estimator.families
