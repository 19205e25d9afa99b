"""vae_lab.preflight: every combination of a sweep is checked, composing once per combination of the
overrides that choose configs; the configs it checks are Hydra's own (compared with a full compose)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from vae_lab import preflight as pf
from vae_lab.config import CONF_DIR


def _app(cfg: DictConfig) -> dict:
    """The config without Hydra's node (whose override lists and run-time fields name the overrides)."""
    data = OmegaConf.to_container(cfg, resolve=False)
    data.pop("hydra")
    return data


def _reference(combo: list[str], config_name: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return _app(compose(config_name=config_name, overrides=combo, return_hydra_config=True))


@pytest.mark.parametrize(
    "overrides, n_jobs, n_composes",
    [
        (["seed=0,1,2"], 3, 1),
        (["posterior=gaussian,vonmises", "seed=3,4", "trainer.max_epochs=2"], 4, 2),
        (["model.latent_dim=2,5", "model.kl_warmup_steps=0,10", "estimator=implicit,score"], 8, 2),
        # the same key twice, or a key inside another's node: composed in full, in the given order
        (["trainer.max_epochs=1,2", "trainer.max_epochs=3"], 2, 2),
        (["trainer.max_epochs=1,2", "trainer={max_epochs:4}"], 2, 2),
        (["+extra=1,2"], 2, 2),
    ],
)
def test_configs_are_hydras_and_composed_once_per_choice_of_configs(
    monkeypatch, overrides, n_jobs, n_composes
):
    import hydra

    calls = []
    real = hydra.compose

    def counting(*args, **kwargs):
        calls.append(kwargs.get("overrides"))
        return real(*args, **kwargs)

    monkeypatch.setattr(hydra, "compose", counting)
    seen = [(combo, _app(cfg)) for combo, cfg in pf.configs(overrides)]
    assert len(seen) == n_jobs
    assert len(calls) == n_composes
    monkeypatch.setattr(hydra, "compose", real)
    for combo, got in seen:
        assert got == _reference(combo, "train"), combo


def test_every_value_of_every_composition_is_checked():
    # the bad value is in the last combination of the plain-key sweep, under the second posterior
    assert pf.preflight(["posterior=gaussian,vonmises", "trainer.max_epochs=1,-5"]) == (
        pf.preflight(["posterior=vonmises", "trainer.max_epochs=-5"])
    )
    assert pf.preflight(["posterior=gaussian,vonmises", "trainer.max_epochs=1,-5"]) is not None


def test_a_misspelt_key_in_a_sweep_gets_hydras_error():
    swept = pf.preflight(["seed=0,1", "trainer.max_epoch=1,2"])
    single = pf.preflight(["trainer.max_epoch=1"])
    assert swept is not None and "trainer.max_epoch" in swept
    assert swept == single


def test_without_hydras_override_step_everything_is_composed(monkeypatch):
    monkeypatch.setattr(pf, "_APPLY", None)
    parsed = pf.OverridesParser.create().parse_overrides(["seed=0,1", "posterior=gaussian"])
    structural, values = pf._split(parsed)
    assert values == [] and structural == [["seed=0", "seed=1"], ["posterior=gaussian"]]
    assert pf.preflight(["seed=0,x"]) == "seed='x' is not allowed; expected an integer >= 0"


@pytest.mark.parametrize("params", [None, {"seed": "0,1"}])
def test_hydras_second_validation_is_skipped_only_inside_the_context(monkeypatch, params):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    composed = []

    class Loader:
        def load_sweep_config(self, master_config, sweep_overrides):
            composed.append(sweep_overrides)

    sweeper = BasicSweeper(max_batch_size=None, params=params)
    sweeper.config = OmegaConf.create({})
    sweeper.hydra_context = type("Context", (), {"config_loader": Loader()})()
    batch = [["seed=0"], ["seed=1"]]
    with pf.hydra_revalidation_skipped():
        sweeper.validate_batch_is_legal(batch)
    assert composed == ([] if params is None else batch)  # sweeper params: not seen by the preflight
    composed.clear()
    sweeper.validate_batch_is_legal(batch)
    assert composed == batch
    assert "validate_batch_is_legal" not in vars(BasicSweeper)


def _count_composes(monkeypatch) -> list[int]:
    from hydra._internal.hydra import Hydra

    calls: list[int] = []
    original = Hydra.compose_config

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Hydra, "compose_config", counted)
    return calls


@pytest.mark.parametrize(
    "config_name, overrides",
    [
        ("train", []),
        ("train", ["posterior=vonmises", "seed=0,1"]),
        ("train", ["hydra.mode=MULTIRUN", "seed=0,1"]),
        ("variance", []),
    ],
)
def test_hydra_mode_known_is_what_get_mode_composes(monkeypatch, config_name, overrides):
    """Inside the context Hydra's get_mode returns the preflight's hydra.mode without composing; that is the
    value Hydra's own get_mode composes for it; after the context get_mode is Hydra's again."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    modes: list = []
    assert pf.preflight(overrides, config_name, first=lambda cfg: modes.append(cfg.hydra.mode)) is None
    composes = _count_composes(monkeypatch)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        real = hydra.get_mode(config_name, overrides)
        assert len(composes) == 1  # Hydra's own get_mode composes the config
        with pf.hydra_mode_known(modes[0]):
            assert hydra.get_mode(config_name, overrides) == real
        assert len(composes) == 1  # inside the context: nothing composed
        assert hydra.get_mode(config_name, overrides) == real and len(composes) == 2
    assert Hydra.get_mode.__qualname__ == "Hydra.get_mode"


@pytest.mark.parametrize(
    "argv, composed",
    [
        (["train"], 0),
        (["train", "-m", "seed=0,1"], 0),
        (["variance"], 0),
        (["train", "--config-dir", str(CONF_DIR)], 1),  # other config files than the preflight's
    ],
)
def test_the_cli_gives_hydra_the_preflights_mode(monkeypatch, argv, composed):
    """`vae-lab train` (a run and a sweep) and `vae-lab variance` run Hydra inside hydra_mode_known: Hydra
    composes the config once for the job, not once more for its mode (unless a flag names other config
    files)."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    from vae_lab import cli

    seen: list = []
    composes = _count_composes(monkeypatch)

    def invoke(task, argv_, config_name="train"):  # stands in for Hydra's main up to its get_mode
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            before = len(composes)
            mode = GlobalHydra.instance().hydra.get_mode(config_name, cli._split_flags(argv_[1:])[1])
            seen.append((mode, len(composes) - before))
        return 0

    monkeypatch.setattr(cli, "_invoke_hydra", invoke)
    monkeypatch.setattr(cli, "_run_sweep", lambda task, argv_, joblib=None: invoke(task, argv_))
    assert cli.main(argv) == 0
    assert seen == [(None, composed)]  # the preflight's mode, and nothing composed for it
    assert Hydra.get_mode.__qualname__ == "Hydra.get_mode"
