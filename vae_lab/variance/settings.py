"""The settings of `vae-lab variance` as structured configs: the schema of ``conf/variance.yaml``.

:class:`VarianceConfig` and the dataclasses under it type every key, and are registered in Hydra's
ConfigStore as ``variance_schema``. :func:`load_settings` merges the composed config into the schema, so
OmegaConf rejects a wrong type or an unknown key, and builds the dataclasses, whose ``__post_init__``
rejects an out-of-range value; both raise :class:`~vae_lab.errors.ConfigError` naming the key as the user
types it (``n_samples=-1 is not allowed; expected an integer >= 2 ...``), which the command prints as
one line with exit status 2.

The schema has no defaults of its own: ``conf/variance.yaml`` holds them, in one place. It is applied by
the task rather than listed in the YAML's defaults, so that the config composes (``vae-lab``'s start-up
check, tests, ``--cfg job``) wherever this module has not been imported, and a wrong type is reported with
what is allowed rather than Hydra's "Error merging override".
"""

from __future__ import annotations

import math
import re
import types
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from vae_lab.errors import ConfigError, check
from vae_lab.variance.experiment import FAMILY_NAMES, supported_estimators

SCHEMA_NAME = "variance_schema"


#: The latent families of the experiments, and the floating-point types they run in.
Family = Enum("Family", [(name, name) for name in FAMILY_NAMES])
Precision = Enum("Precision", [(name, name) for name in ("float32", "float64")])


def _finite(key: str, value: float, positive: bool = False) -> float:
    ok = math.isfinite(value) and (value > 0 or not positive)
    check(ok, key, "expected a number > 0" if positive else "expected a finite number", value)
    return value


@dataclass
class GridSettings:
    """``num`` log-spaced concentrations from ``min`` to ``max``."""

    min: float
    max: float
    num: int

    def check(self, key: str) -> None:
        _finite(f"{key}.min", self.min, positive=True)
        _finite(f"{key}.max", self.max, positive=True)
        check(self.num >= 1, f"{key}.num", "expected an integer >= 1", self.num)
        check(self.max >= self.min, f"{key}.max", f"expected a number >= {key}.min", self.max)

    def values(self) -> list[float]:
        if self.num == 1:
            return [float(self.min)]
        return [float(v) for v in np.logspace(math.log10(self.min), math.log10(self.max), self.num)]


@dataclass
class FamilySettings:
    """The concentrations of a family: ``concentrations`` (a list) if set, else the ``grid``."""

    KEY: ClassVar[str] = ""
    grid: GridSettings
    concentrations: list[float] | None

    def __post_init__(self) -> None:
        self.grid.check(f"{self.KEY}.grid")
        if self.concentrations is not None:
            allowed = "expected null (use the grid) or a non-empty list of numbers > 0"
            check(len(self.concentrations) > 0, f"{self.KEY}.concentrations", allowed, [])
            for i, value in enumerate(self.concentrations):
                _finite(f"{self.KEY}.concentrations[{i}]", value, positive=True)

    def values(self) -> list[float]:
        return list(self.concentrations) if self.concentrations is not None else self.grid.values()


@dataclass
class DirichletSettings(FamilySettings):
    """q = Dirichlet(alpha_1, *rest), alpha_1 varied; p = Dirichlet(target)."""

    KEY: ClassVar[str] = "dirichlet"
    rest: list[float]
    target: list[float]

    def __post_init__(self) -> None:
        super().__post_init__()
        check(len(self.rest) >= 1, "dirichlet.rest", "expected at least one more concentration (K >= 2)", [])
        for name in ("rest", "target"):
            for i, value in enumerate(getattr(self, name)):
                _finite(f"dirichlet.{name}[{i}]", value, positive=True)
        k = len(self.rest) + 1
        check(
            len(self.target) == k,
            "dirichlet.target",
            f"expected {k} concentrations (1 + len(rest))",
            self.target,
        )

    def params(self) -> dict[str, Any]:
        return {"rest": list(self.rest), "target": list(self.target)}


@dataclass
class VonMisesTarget:
    loc: float
    concentration: float


@dataclass
class VonMisesSettings(FamilySettings):
    """q = VonMises(loc, kappa), kappa varied; p = VonMises(target.loc, target.concentration)."""

    KEY: ClassVar[str] = "vonmises"
    loc: float
    target: VonMisesTarget

    def __post_init__(self) -> None:
        super().__post_init__()
        _finite("vonmises.loc", self.loc)
        _finite("vonmises.target.loc", self.target.loc)
        _finite("vonmises.target.concentration", self.target.concentration, positive=True)

    def params(self) -> dict[str, Any]:
        t = self.target
        return {"loc": self.loc, "target_loc": t.loc, "target_concentration": t.concentration}


@dataclass
class GaussianSettings:
    """d/dtheta E_N(theta,1)[z^2], the average of each N in ``n``, ``repetitions`` times."""

    enabled: bool
    theta: float
    n: list[int]
    repetitions: int

    def __post_init__(self) -> None:
        _finite("gaussian.theta", self.theta)
        check(len(self.n) > 0, "gaussian.n", "expected a non-empty list of integers >= 1", [])
        for i, value in enumerate(self.n):
            check(value >= 1, f"gaussian.n[{i}]", "expected an integer >= 1", value)
        check(self.repetitions >= 4, "gaussian.repetitions", "expected an integer >= 4", self.repetitions)


@dataclass
class VarianceConfig:
    """Everything `vae-lab variance` reads (conf/variance.yaml documents each key)."""

    families: list[Family]
    estimators: list[str]
    rsvi_B: list[int]
    n_samples: int
    seed: int
    dtype: Precision
    plot: bool
    dirichlet: DirichletSettings
    vonmises: VonMisesSettings
    gaussian: GaussianSettings | None
    preset_for: str | None = None  # set by presets (experiment=...), read by `vae-lab train` to refuse them

    def __post_init__(self) -> None:
        allowed = "expected an integer >= 2 (a variance needs two samples)"
        check(self.n_samples >= 2, "n_samples", allowed, self.n_samples)
        check(self.seed >= 0, "seed", "expected an integer >= 0", self.seed)
        check(bool(self.estimators) or not self.families, "estimators", "expected a non-empty list", [])
        families = self.family_names or [f.value for f in Family]
        supported = sorted(set.intersection(*(set(supported_estimators(f)) for f in families)))
        allowed = f"choose from {', '.join(supported)} (the estimators for {', '.join(families)})"
        for name in self.estimators:
            check(name in supported, "estimators", allowed, name)
        for i, B in enumerate(self.rsvi_B):
            check(B >= 0, f"rsvi_B[{i}]", "expected an integer >= 0", B)
        allowed = "expected a non-empty list of integers >= 0 (RSVI is among the estimators)"
        check("rsvi" not in self.estimators or bool(self.rsvi_B), "rsvi_B", allowed, [])

    @property
    def family_names(self) -> list[str]:
        return [f.value for f in self.families]

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype.value)


ConfigStore.instance().store(name=SCHEMA_NAME, node=VarianceConfig)


def load_settings(cfg: DictConfig | dict) -> VarianceConfig:
    """``cfg`` (the composed conf/variance.yaml) checked against :class:`VarianceConfig` and built; a bad
    value raises :class:`ConfigError` naming its key."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(VarianceConfig), cfg))
    except OmegaConfBaseException as err:
        raise _config_error(err) from err


def _config_error(err: OmegaConfBaseException) -> ConfigError:
    """OmegaConf's error (full_key, value) as a ConfigError that says what the schema allows there."""
    key = err.full_key or str(err.key or "")
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        parent = _type_at(key.rpartition(".")[0]) if "." in key else VarianceConfig
        names = [f.name for f in fields(parent)] if is_dataclass(parent) else []
        return ConfigError(key, "", detail=f"{key}: not a setting; choose from {', '.join(names)}")
    if isinstance(err, InterpolationResolutionError):
        return ConfigError(key, "", detail=f"{key}: {str(err.msg or err).splitlines()[0]}")
    expected = _describe(_type_at(key))
    if isinstance(err, MissingMandatoryValue):
        return ConfigError(key, "", detail=f"{key}: missing; expected {expected}")
    if expected is None:
        expected = str(err.msg or err).splitlines()[0]
    return ConfigError(key, f"expected {expected}", err.value)


def _type_at(path: str) -> Any:
    """The schema's type at ``path`` (``dirichlet.grid.num``, ``families[0]``), or None."""
    tp: Any = VarianceConfig
    for part in re.findall(r"\[\d+\]|[^.\[\]]+", path):
        tp = _strip_optional(tp)
        if part.startswith("["):
            if get_origin(tp) is not list:
                return None
            (tp,) = get_args(tp)
        else:
            hints = get_type_hints(tp) if is_dataclass(tp) else {}
            if part not in hints:
                return None
            tp = hints[part]
    return tp


def _strip_optional(tp: Any) -> Any:
    args = get_args(tp)
    if get_origin(tp) in (Union, types.UnionType):
        return next(a for a in args if a is not type(None))
    return tp


def _describe(tp: Any) -> str | None:
    """What a value of type ``tp`` looks like, in words."""
    if tp is None:
        return None
    if _strip_optional(tp) is not tp:
        return f"null or {_describe(_strip_optional(tp))}"
    if get_origin(tp) is list:
        (item,) = get_args(tp)
        if isinstance(item, type) and issubclass(item, Enum):
            return f"a list of names from {', '.join(item.__members__)}"
        return f"a list of {_PLURAL.get(item) or _describe(item)}"
    if isinstance(tp, type) and issubclass(tp, Enum):
        return f"one of {', '.join(tp.__members__)}"
    if is_dataclass(tp):
        return f"a mapping with keys {', '.join(f.name for f in fields(tp))}"
    return _SINGULAR.get(tp, getattr(tp, "__name__", str(tp)))


_SINGULAR = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURAL = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}
