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


#: groups composed into the model's config (model.posterior, ...), chosen on the command line as the others
MODEL_GROUPS = ["posterior", "prior", "estimator"]


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_group_option_composes(group, option):
    cfg = compose_train([f"{group}={option}"])
    assert (cfg.model if group in MODEL_GROUPS else cfg)[group] is not None


@pytest.mark.parametrize("option", group_options("posterior"))
def test_each_posterior_and_its_natural_prior_build(option):
    cfg = compose_train([f"posterior={option}"])
    head, prior = instantiate(cfg.model.posterior), instantiate(cfg.model.prior)
    assert head.family == option
    assert prior().event_shape == (cfg.model.latent_dim,)


@pytest.mark.parametrize("option", group_options("estimator"))
def test_each_estimator_builds(option):
    estimator = instantiate(compose_train([f"estimator={option}"]).model.estimator)
    assert callable(estimator.supports)


@pytest.mark.parametrize(
    "overrides",
    [[], ["posterior=vonmises", "estimator=rsvi"], ["experiment=figurnov2018/lda_20news"]],
    ids=["default", "vonmises-rsvi", "lda_20news"],
)
def test_instantiating_the_model_config_builds_the_whole_vae(overrides):
    """One model tree: posterior, prior and estimator sit in the model's config, so the model node alone
    builds the VAE with all of them (only the data's input_dim comes from outside)."""
    cfg = compose_train(overrides)
    model = instantiate(cfg.model, input_dim=64)
    for group in MODEL_GROUPS:
        assert type(getattr(model, group)).__name__ == cfg.model[group]._target_.rsplit(".", 1)[-1]
    assert not {"posterior", "prior", "estimator"} & set(cfg)  # nothing left at the top level


# -- callbacks: one file per callback, composed by defaults -----------------------------------------
#: what `callbacks=default` composes, in this order (the order the trainer calls them)
DEFAULT_CALLBACKS = [
    "model_checkpoint",
    "last_checkpoint",
    "progress_bar",
    "interrupt_checkpoint",
    "resume_state",
    "grad_variance",
    "reconstructions",
    "prior_samples",
    "latent_grid",
    "denoising",
    "latent_scatter",
    "latent_projector",
    "scalar_layout",
]
#: options of the group that compose other files rather than hold a callback
CALLBACK_SETS = {"default": DEFAULT_CALLBACKS, "lda": [*DEFAULT_CALLBACKS, "topic_words"]}


@pytest.mark.parametrize("option", group_options("callbacks"))
def test_each_callback_file_holds_one_callback_named_as_the_file_or_composes_others(option):
    from omegaconf import OmegaConf

    text = OmegaConf.load(CONF_DIR / "callbacks" / f"{option}.yaml")
    if option in CALLBACK_SETS:
        assert set(text) == {"defaults"}  # a set of callbacks is a defaults list, nothing else
        assert list(compose_train([f"callbacks={option}"]).callbacks) == CALLBACK_SETS[option]
    else:
        assert list(text) == [option] and "_target_" in text[option]
        assert list(compose_train([f"callbacks={option}"]).callbacks) == [option]


def test_callbacks_keep_their_keys_and_compose_as_lists():
    cfg = compose_train(["callbacks.grad_variance.enabled=false", "~callbacks.progress_bar"])
    assert cfg.callbacks.grad_variance.enabled is False and "progress_bar" not in cfg.callbacks
    assert compose_train(["experiment=figurnov2018/lda_20news"]).callbacks.topic_words.n_words == 10
    listed = compose_train(["callbacks=[default,topic_words]"])
    assert list(listed.callbacks) == CALLBACK_SETS["lda"]


def test_the_command_line_check_accepts_a_list_of_callbacks_and_names_an_unknown_one():
    from vae_lab.preflight import preflight

    assert preflight(["callbacks=[default,topic_words]"]) is None
    error = preflight(["callbacks=[default,topic_wrds]"])
    assert error.startswith("callbacks=topic_wrds: unknown option; choose one of: ")
