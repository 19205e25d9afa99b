"""`vae_lab.build`: one build(cfg) for the data module and the whole VAE, the run config it stores for
checkpoints, and config errors that name the key a user sets."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from vae_lab.build import build, instantiate_key
from vae_lab.config import CONF_DIR
from vae_lab.errors import ConfigError


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=["paths.output_dir=unused", *overrides])


def test_build_gives_the_data_module_and_the_vae_with_its_run_config():
    cfg = compose_train(["posterior=vonmises", "model.latent_dim=3"])
    datamodule, model = build(cfg)
    assert datamodule.input_dim == 64 and model.posterior.family == "vonmises"
    assert type(model.prior).__name__ == "CircularUniformPrior"  # the natural prior
    config = model.run_config
    assert "paths" not in config and config["model"]["latent_dim"] == 3
    # interpolations stay as the run had them, also those that building resolves (model.prior points there)
    assert config["model"]["prior"] == "${natural_prior}"
    assert config["natural_prior"]["latent_dim"] == "${model.latent_dim}"
    assert config["model"]["posterior"]["latent_dim"] == "${model.latent_dim}"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.posterior.min_scale=-1"], "model.posterior.min_scale"),
        (["model.latent_dim=0"], "model.latent_dim"),  # posterior.latent_dim is ${model.latent_dim}
        (["prior=normal", "model.prior.scale=0"], "model.prior.scale"),
        # the estimator's own ConfigError (its argument's name), under the estimator's node
        (["estimator=score", "model.estimator.baseline=nonsense"], "model.estimator.baseline"),
        (["posterior=dirichlet", "estimator=reparam"], "estimator"),  # a choice: estimator=...
    ],
)
def test_a_bad_value_names_the_key_a_user_sets(overrides, key):
    cfg = compose_train(overrides)
    with pytest.raises(ConfigError) as info:
        instantiate_key(cfg, "model", input_dim=64)
    assert info.value.key == key
    assert str(info.value).startswith(key), str(info.value)


@pytest.mark.parametrize("flush", [True, False])
def test_a_run_flushes_subnormals_to_zero_unless_told_not_to(flush):
    """Adam's moments of never-updated weights decay into subnormal floats, on which a CPU computes about
    40 times slower; configure_torch flushes them (flush_denormal, on by default)."""
    import torch
    from omegaconf import OmegaConf

    from vae_lab.build import configure_torch

    tiny = torch.tensor([1e-39], dtype=torch.float32)  # subnormal in float32
    cfg = OmegaConf.create({"threads": 1, "precision": 32, "flush_denormal": flush})
    try:
        configure_torch(cfg)
        assert bool((tiny * 1.0 == 0).item()) is flush
    finally:
        torch.set_flush_denormal(False)
    assert (tiny * 1.0).item() > 0  # torch's default: subnormals kept
    assert compose_train([]).flush_denormal is True


def test_threads_null_takes_the_cpus_the_process_may_use_not_the_nodes(monkeypatch):
    """Under SLURM or a cgroup the affinity set is what a job has; os.cpu_count() counts the whole node, and
    threads=null took that many threads on a few cores."""
    import torch

    from vae_lab.build import set_threads, usable_cpus

    before = torch.get_num_threads()
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    try:
        assert usable_cpus() == 3
        set_threads(None)
        assert torch.get_num_threads() == 3
        set_threads(2)  # a number is taken as it is
        assert torch.get_num_threads() == 2
        monkeypatch.delattr("os.sched_getaffinity", raising=False)  # an OS without affinity
        assert usable_cpus() == 64
    finally:
        torch.set_num_threads(before)
