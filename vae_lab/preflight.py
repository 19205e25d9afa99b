"""Checks of a command line before Hydra starts: every combination of the (sweep) overrides is composed
once, so a typo in a group option or key fails at once with one line that names it and what is allowed,
instead of inside a sweep or after a traceback."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from vae_lab.config import CONF_DIR, group_options
from vae_lab.errors import one_line
from vae_lab.settings_check import check_settings

#: Hydra's step that applies key overrides to a composed config (private; without it every combination is
#: composed in full)
_APPLY = getattr(ConfigLoaderImpl, "_apply_overrides_to_config", None)

#: groups composed into the model's config: ``posterior=vonmises`` still selects an option, but its
#: settings are ``model.posterior.*`` (``posterior.min_concentration=...`` is an old form)
MODEL_GROUPS = ("posterior", "prior", "estimator")


def override_value(overrides: list[str], key: str) -> Any:
    """The value the last override of ``key`` sets (parsed: ``true`` is True), or None."""
    parser, value = OverridesParser.create(), None
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except HydraException:
            continue
        if override.key_or_group == key and not override.is_sweep_override():
            value = override.value()
    return value


def override_values(overrides: list[str], key: str) -> list[Any]:
    """Every value the overrides of ``key`` set, sweeps enumerated (as strings)."""
    parser, values = OverridesParser.create(), []
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except HydraException:
            continue
        if override.key_or_group == key:
            if override.is_sweep_override() and not override.is_interval_sweep():
                values += list(override.sweep_string_iterator())
            else:
                values.append(override.value())
    return values


def moved_key(override: str) -> str | None:
    """A one-line error for an override in the form of a key that moved under ``model``
    (``posterior.min_concentration=1e-3`` is now ``model.posterior.min_concentration=1e-3``), else None."""
    body = override.lstrip("+~")
    key, sep, value = body.partition("=")
    head = key.split(".")[0]
    if head in MODEL_GROUPS and "." in key:
        new = f"{override[: len(override) - len(body)]}model.{key}{sep}{value}"
        return (
            f"{override}: {head} settings are under model now (posterior, prior and estimator are parts of "
            f"the model's config); use {new}"
        )
    return None


def _value_sweep(override: Override, keys: list[str]) -> bool:
    """Whether a sweep ``override`` sets a plain config key (``seed=0,1,2``, ``model.lr=1e-3,1e-4``), which
    Hydra applies on top of the composed config, rather than choosing configs (a group such as
    ``posterior=...``, ``hydra/...``, a package ``@``) or adding and deleting keys (``+``, ``~``). A key set
    that another override sets too, or a key inside it or around it, is not counted as one: their order
    would matter."""
    key = override.get_key_element()
    others = [k.lstrip("+~") for k in keys]
    others.remove(key.lstrip("+~"))
    return (
        _APPLY is not None
        and override.is_sweep_override()
        and not override.is_interval_sweep()
        and not key.startswith(("+", "~", "hydra"))
        and "@" not in key
        and "/" not in key
        and not ("." not in key and (CONF_DIR / key).is_dir())  # a group (a key path has dots)
        and not any(k == key or k.startswith(key + ".") or key.startswith(k + ".") for k in others)
    )


def _split(parsed: list[Override]) -> tuple[list[list[str]], list[list[str]]]:
    """The overrides as lists of choices (one ``key=value`` each): those that choose configs (all but the
    sweeps of plain keys; a fixed override is a list of one), and the sweeps of plain keys."""
    keys = [override.get_key_element() for override in parsed]
    structural: list[list[str]] = []
    value_sweeps: list[list[str]] = []
    for override in parsed:
        if override.is_sweep_override() and not override.is_interval_sweep():
            values = list(override.sweep_string_iterator())
        elif override.is_interval_sweep():
            values = []  # an Optuna interval: nothing to enumerate here
        else:
            values = [override.get_value_element_as_str()]
        prefix = override.input_line[: len(override.input_line) - len(override.input_line.lstrip("+~"))]
        texts = (
            [f"{prefix}{override.get_key_element().lstrip('+~')}={v}" for v in values]
            if override.is_sweep_override()
            else [override.input_line]  # as typed: Hydra's run records the same text
        )
        if _value_sweep(override, keys):
            value_sweeps.append(texts)
        else:
            structural.append(texts or [override.input_line if not override.is_interval_sweep() else ""])
    return structural, value_sweeps


def _unknown_option(parsed: list[Override]) -> str | None:
    """A one-line error for a config group option that does not exist, or None."""
    for override in parsed:
        group = override.get_key_element().lstrip("+~").split("@")[0]
        if "." in group or not (CONF_DIR / group).is_dir() or group.startswith("hydra"):
            continue
        if override.is_interval_sweep():
            continue
        options = group_options(group)
        chosen = override.value() if not override.is_sweep_override() else None
        values = chosen if isinstance(chosen, list) else None  # callbacks=[default,topic_words]
        if values is None:
            values = (
                list(override.sweep_string_iterator())
                if override.is_sweep_override()
                else [override.get_value_element_as_str()]
            )
        for value in values:
            if str(value) not in options and value not in ("null", None):
                return f"{group}={value}: unknown option; choose one of: {', '.join(options)}"
    return None


def configs(overrides: list[str], config_name: str = "train") -> Iterator[tuple[list[str], DictConfig]]:
    """Every combination of the (sweep) overrides with its composed config (``return_hydra_config``).

    Composition (defaults list, YAML files, merges) depends only on the overrides that choose configs. So
    the config is composed once per combination of those, and each combination of the sweeps of plain keys
    is applied on top of it by Hydra's own override step, as Hydra applies them after composing: a sweep of
    27 jobs over two groups of three options and three seeds composes 9 times instead of 27. The config
    yielded is the same object each time within a composition (every combination sets the same keys and
    overwrites the last one's values): read it before the next. Raises Hydra's and OmegaConf's errors.
    """
    from hydra import compose, initialize_config_dir

    parser = OverridesParser.create()
    structural, value_sweeps = _split(parser.parse_overrides(overrides))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for combo in itertools.product(*structural):
            chosen = [c for c in combo if c]
            cfg = compose(config_name=config_name, overrides=chosen, return_hydra_config=True)
            for values in itertools.product(*value_sweeps):
                if values:
                    _APPLY(parser.parse_overrides(list(values)), cfg)  # type: ignore[misc]
                yield chosen + list(values), cfg


def preflight(
    overrides: list[str], config_name: str = "train", first: Callable[[DictConfig], None] | None = None
) -> str | None:
    """Compose every combination of the (sweep) overrides (:func:`configs`) and check its settings; return
    a one-line error or None. ``first`` is called with the first composed config (with ``hydra``)."""
    if config_name in ("train", "eval"):
        for text in overrides:
            if error := moved_key(text):
                return error
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        return one_line(err)
    if error := _unknown_option(parsed):
        return error
    try:
        for i, (_, cfg) in enumerate(configs(overrides, config_name)):
            if i == 0 and first is not None:
                first(cfg)
            if config_name == "train" and (error := check_settings(cfg)):
                return error
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        return one_line(err)
    return None


@contextlib.contextmanager
def hydra_revalidation_skipped() -> Iterator[None]:
    """Within this context Hydra's basic sweeper does not compose every job's config once more before it
    launches the jobs (``Sweeper.validate_batch_is_legal``, about 0.4 s a job): :func:`preflight` has just
    composed and checked the same combinations. A sweep with parameters of its own in the config
    (``hydra.sweeper.params``, which the command line's preflight does not see) is still validated, and
    so is any other sweeper's (Optuna's). Use it around a sweep whose overrides passed :func:`preflight`.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    own = "validate_batch_is_legal" in vars(BasicSweeper)
    original = BasicSweeper.validate_batch_is_legal

    def validate_batch_is_legal(self: BasicSweeper, batch: Any) -> None:
        if self.params:  # hydra.sweeper.params: overrides that the preflight did not see
            original(self, batch)

    BasicSweeper.validate_batch_is_legal = validate_batch_is_legal  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own:
            BasicSweeper.validate_batch_is_legal = original  # type: ignore[method-assign]
        else:
            del BasicSweeper.validate_batch_is_legal


@contextlib.contextmanager
def hydra_mode_known(mode: Any) -> Iterator[None]:
    """Within this context Hydra takes ``mode`` for the config's ``hydra.mode`` (``None`` where the config
    leaves it unset, as vae-lab's does; Hydra then follows ``--multirun``) instead of composing the whole
    config once more to read it (``Hydra.get_mode``, 0.26-0.45 s a command): :func:`preflight` has just
    composed the same config. Use it around a command whose overrides passed :func:`preflight`, with the
    ``hydra.mode`` of the config that the preflight composed first."""
    from hydra._internal.hydra import Hydra

    original = Hydra.get_mode

    def get_mode(self: Hydra, config_name: str | None, overrides: list[str]) -> Any:
        return mode

    Hydra.get_mode = get_mode  # type: ignore[method-assign]
    try:
        yield
    finally:
        Hydra.get_mode = original  # type: ignore[method-assign]


@contextlib.contextmanager
def hydra_config_known(name: str, command: list[str], cfg: DictConfig) -> Iterator[None]:
    """Within this context Hydra's run takes ``cfg`` as the config that ``name`` with the overrides
    ``command`` composes (once: a second composition is Hydra's own), instead of composing it once more
    (0.14-0.2 s a command): :func:`preflight` has just composed the same config, by the same Hydra call
    (``ConfigLoaderImpl.load_configuration``, which the compose API uses too). Hydra's main adds
    ``hydra.mode=RUN`` to a run's overrides where the config leaves the mode unset; that one override is
    applied to ``cfg`` and recorded as Hydra's composition does. Only for a run (``RunMode.RUN``) of these
    very overrides with no sweep among them; anything else is composed as before. ``cfg`` must be the
    preflight's only config, with ``hydra``, and not used elsewhere afterwards: Hydra's run writes its
    runtime keys into it."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.types import RunMode

    original = ConfigLoaderImpl.load_configuration
    pending = [cfg]

    def load_configuration(
        self: ConfigLoaderImpl,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        extra = overrides[len(command) :]
        if (
            pending
            and run_mode == RunMode.RUN
            and config_name == name
            and overrides[: len(command)] == command
            and extra in ([], [RUN_MODE])
        ):
            cfg = pending.pop()
            if extra:  # as Hydra's composition applies and records it
                parsed = OverridesParser.create().parse_overrides(extra)
                ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
                cfg.hydra.overrides.hydra.extend(extra)
            return cfg
        return original(self, config_name, overrides, run_mode, from_shell, validate_sweep_overrides)

    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = original  # type: ignore[method-assign]


#: the override Hydra's main adds to a run's command line (hydra._internal.utils._run_app)
RUN_MODE = "hydra.mode=RUN"

#: Hydra's flags that choose other config files than the preflight composes
CONFIG_FLAGS = frozenset(
    {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}
)
_MULTIRUN_FLAGS = frozenset({"-m", "--multirun"})


class FirstConfig:
    """Pass as :func:`preflight`'s ``first``: it keeps the first config composed (and calls ``then`` with
    it). :meth:`known` is then the context in which Hydra takes that config's ``hydra.mode``
    (:func:`hydra_mode_known`), and a single run the config itself (:func:`hydra_config_known`), rather
    than composing the config once more for each."""

    def __init__(self, then: Callable[[DictConfig], None] | None = None) -> None:
        self.configs: list[DictConfig] = []
        self.then = then

    def __call__(self, cfg: DictConfig) -> None:
        self.configs.append(cfg)
        if self.then is not None:
            self.then(cfg)

    def forget(self) -> None:
        """Let Hydra compose for itself (an override the preflight did not see changes the config)."""
        self.configs.clear()

    @contextlib.contextmanager
    def known(
        self, flags: list[str], overrides: list[str] | None = None, config_name: str = "train"
    ) -> Iterator[None]:
        """:func:`hydra_mode_known` with the kept config's mode, and, for a run of ``overrides`` (those
        the preflight composed, without sweeps), :func:`hydra_config_known` with the config; nothing where
        the preflight did not run or ``flags`` make Hydra compose other config files."""
        with contextlib.ExitStack() as stack:
            if self.configs and not CONFIG_FLAGS.intersection(flags):
                cfg = self.configs[0]
                stack.enter_context(hydra_mode_known(cfg.hydra.mode))
                run = cfg.hydra.mode is None and not _MULTIRUN_FLAGS.intersection(flags)
                if overrides is not None and run and _first_sweep(overrides) is None:
                    stack.enter_context(hydra_config_known(config_name, list(overrides), cfg))
            yield


def sweep_without_multirun(
    command: str, flags: list[str], overrides: list[str], first: FirstConfig
) -> str | None:
    """A one-line error for a sweep (``seed=0,1``) on the command line of a run: no ``-m`` and a config
    that leaves ``hydra.mode`` unset (first config of :func:`preflight`), where Hydra would stop with its
    several-line "Ambiguous value" message. None otherwise."""
    if _MULTIRUN_FLAGS.intersection(flags) or not first.configs or first.configs[0].hydra.mode is not None:
        return None
    text = _first_sweep(overrides)
    if not text:  # none, or overrides Hydra cannot parse (the preflight has reported those)
        return None
    key, _, value = text.partition("=")
    group = (CONF_DIR / key.lstrip("+~")).is_dir()
    as_list = f"; a list is written {key}=[{value}]" if "(" not in value and not group else ""
    return f"{text}: several values sweep only with -m (vae-lab {command} -m {text}){as_list}"


def _first_sweep(overrides: list[str]) -> str | None:
    """The first sweep override (as typed) among ``overrides``; None where there is none, and "" where Hydra
    cannot parse them (to be left to Hydra, which reports it)."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return ""
    return next((o.input_line for o in parsed if o.is_sweep_override()), None)
