"""Checks of a command line before Hydra starts: every combination of the (sweep) overrides is composed
once, so a typo in a group option or key fails at once with one line that names it and what is allowed,
instead of inside a sweep or after a traceback."""

from __future__ import annotations

import itertools
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from vae_lab.config import CONF_DIR, group_options
from vae_lab.errors import one_line
from vae_lab.settings_check import check_settings

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


def preflight(overrides: list[str], config_name: str = "train") -> str | None:
    """Compose every combination of the (sweep) overrides; return a one-line error or None."""
    from hydra import compose, initialize_config_dir

    if config_name in ("train", "eval"):
        for text in overrides:
            if error := moved_key(text):
                return error
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        return one_line(err)
    choices: list[list[str]] = []
    for override in parsed:
        key = override.get_key_element().lstrip("+~")
        if override.is_sweep_override() and not override.is_interval_sweep():
            values = list(override.sweep_string_iterator())
        elif override.is_interval_sweep():
            values = []  # an Optuna interval: nothing to enumerate here
        else:
            values = [override.get_value_element_as_str()]
        group = key.split("@")[0]
        if "." not in group and (CONF_DIR / group).is_dir() and not group.startswith("hydra"):
            options = group_options(group)
            chosen = override.value() if not override.is_sweep_override() else values
            for value in chosen if isinstance(chosen, list) else values:  # callbacks=[default,topic_words]
                if str(value) not in options and value not in ("null", None):
                    return f"{group}={value}: unknown option; choose one of: {', '.join(options)}"
        prefix = override.input_line[: len(override.input_line) - len(override.input_line.lstrip("+~"))]
        choices.append(
            [f"{prefix}{override.get_key_element().lstrip('+~')}={v}" for v in values]
            or [override.input_line if not override.is_interval_sweep() else ""]
        )
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for combo in itertools.product(*choices):
            try:
                cfg = compose(
                    config_name=config_name, overrides=[c for c in combo if c], return_hydra_config=True
                )
            except (HydraException, OmegaConfBaseException, ValueError) as err:
                return one_line(err)
            if config_name == "train" and (error := check_settings(cfg)):
                return error
    return None
