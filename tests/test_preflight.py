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


def _count_calls(monkeypatch, cls, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(cls, name)

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, counted)
    return calls


def _count_composes(monkeypatch) -> list[int]:
    from hydra._internal.hydra import Hydra

    return _count_calls(monkeypatch, Hydra, "compose_config")


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


def _count_loads(monkeypatch) -> list[int]:
    """Counts Hydra's real compositions (ConfigLoaderImpl's, under the compose API and Hydra's main)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    return _count_calls(monkeypatch, ConfigLoaderImpl, "_load_configuration_impl")


@pytest.mark.parametrize(
    "config_name, overrides",
    [
        ("train", []),
        ("train", ["posterior=vonmises", "model.latent_dim=3", "+trainer.limit_val_batches=2"]),
        ("train", ["experiment=figurnov2018/lda_20news", "~callbacks.topic_words"]),
        ("variance", []),
    ],
)
def test_hydra_config_known_is_what_hydra_composes(monkeypatch, config_name, overrides):
    """Inside the context Hydra's run composition returns the preflight's config, once, without composing;
    Hydra's own composition of the same command line (as its main composes it) is equal to it; a second
    composition inside the context, and any after it, are Hydra's own."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    first = pf.FirstConfig()
    assert pf.preflight(overrides, config_name, first=first) is None
    (kept,) = first.configs
    loads = _count_loads(monkeypatch)
    run = [*overrides, pf.RUN_MODE]  # what Hydra's main composes for a run
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        real = hydra.compose_config(config_name, run, run_mode=RunMode.RUN, from_shell=True)
        assert len(loads) == 1
        with pf.hydra_config_known(config_name, overrides, kept):
            assert hydra.compose_config(config_name, run, run_mode=RunMode.RUN) is kept
            assert len(loads) == 1  # nothing composed
            assert hydra.compose_config(config_name, run, run_mode=RunMode.RUN) is not kept
            assert len(loads) == 2
        assert hydra.compose_config(config_name, run, run_mode=RunMode.RUN) is not kept
    assert OmegaConf.to_yaml(kept) == OmegaConf.to_yaml(real)
    assert kept.hydra.mode == RunMode.RUN and list(kept.hydra.overrides.hydra)[-1] == pf.RUN_MODE
    assert ConfigLoaderImpl.load_configuration.__qualname__ == "ConfigLoaderImpl.load_configuration"


def test_hydra_config_known_leaves_other_compositions_alone(monkeypatch):
    """Another config name, other overrides or a multirun's composition are composed as before."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    first = pf.FirstConfig()
    assert pf.preflight([], "train", first=first) is None
    loads = _count_loads(monkeypatch)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        with pf.hydra_config_known("train", [], first.configs[0]):
            for name, overrides, mode in (
                ("variance", [], RunMode.RUN),
                ("train", ["seed=1"], RunMode.RUN),
                ("train", [], RunMode.MULTIRUN),
            ):
                assert hydra.compose_config(name, overrides, run_mode=mode) is not first.configs[0]
    assert len(loads) == 3


@pytest.mark.parametrize(
    "argv, composed",
    [
        (["train"], 1),  # the preflight's, taken by Hydra's run
        (["train", "seed=0,1"], 1),  # a sweep without -m: stopped after the preflight (exit status 2)
        (["train", "--config-dir", str(CONF_DIR)], 3),  # other config files: get_mode and run compose
    ],
)
def test_a_run_composes_its_config_once(monkeypatch, tmp_path, argv, composed):
    """`vae-lab train` of one run composes its config once in all: the preflight's, which Hydra's run takes
    (with the same .hydra/config.yaml as its own would be: test_hydra_config_known_is_what_hydra_composes)."""
    from vae_lab import cli

    monkeypatch.chdir(tmp_path)
    loads = _count_loads(monkeypatch)
    ran: list[DictConfig] = []
    monkeypatch.setattr(cli, "TrainTask", lambda command: ran.append)
    code = cli.main(argv)
    assert len(loads) == composed
    assert (code, len(ran)) == ((0, 1) if "seed=0,1" not in argv else (2, 0))


@pytest.mark.parametrize(
    "flags, overrides, error",
    [
        ([], ["seed=0,1"], "seed=0,1: several values sweep only with -m (vae-lab train -m seed=0,1); a list"),
        ([], ["model.lr=range(1,3)"], "model.lr=range(1,3): several values sweep only with -m"),
        ([], ["posterior=gaussian,gamma"], "sweep only with -m (vae-lab train -m posterior=gaussian,gamma)"),
        (["-m"], ["seed=0,1"], None),
        ([], ["hydra.mode=MULTIRUN", "seed=0,1"], None),  # the config makes it a sweep
        ([], ["seed=1"], None),
    ],
)
def test_a_sweep_without_multirun_is_one_line(flags, overrides, error):
    first = pf.FirstConfig()
    assert pf.preflight([o for o in overrides if "range" not in o], first=first) is None
    found = pf.sweep_without_multirun("train", flags, overrides, first)
    assert (found is None) == (error is None) and (error is None or error in found), found
    assert error is None or "posterior" not in error or "list" not in found  # a group's options are no list
