"""The structured config of `vae-lab variance` (vae_lab/variance/settings.py): the shipped config and the
preset load; a wrong type is rejected by OmegaConf against the schema, an out-of-range value by the
dataclasses' ``__post_init__``; either way one ConfigError line that names the key and what is allowed."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vae_lab.config import CONF_DIR
from vae_lab.errors import ConfigError
from vae_lab.variance.settings import SCHEMA_NAME, Family, VarianceConfig, load_settings


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="variance", overrides=list(overrides))


def test_the_shipped_config_and_the_preset_load():
    s = load_settings(composed())
    assert isinstance(s, VarianceConfig) and s.families == [Family.dirichlet, Family.vonmises]
    assert s.family_names == ["dirichlet", "vonmises"] and s.torch_dtype == torch.float64
    grid = s.dirichlet.values()
    assert len(grid) == 13 and grid[0] == pytest.approx(0.1) and grid[-1] == pytest.approx(10.0)
    assert s.dirichlet.params() == {"rest": [1.0, 1.0], "target": [2.0, 3.0, 4.0]}
    assert s.vonmises.params() == {"loc": 0.0, "target_loc": 0.5, "target_concentration": 2.0}
    assert s.gaussian is not None and s.gaussian.enabled and s.preset_for is None

    preset = load_settings(composed("experiment=figurnov2018/toy_variance"))
    assert preset.preset_for == "variance" and preset.n_samples == 100_000
    assert preset.gaussian is not None and not preset.gaussian.enabled
    assert len(preset.vonmises.values()) == 25

    chosen = load_settings(composed("vonmises.concentrations=[0.5,5]", "dtype=float32", "gaussian=null"))
    assert chosen.vonmises.values() == [0.5, 5.0] and chosen.torch_dtype == torch.float32
    assert chosen.gaussian is None


def test_the_schema_is_registered_in_hydras_config_store():
    node = ConfigStore.instance().load(f"{SCHEMA_NAME}.yaml").node
    assert OmegaConf.get_type(node) is VarianceConfig


#: (override, the start of the message): types checked by OmegaConf against the schema
WRONG_TYPES = [
    ("n_samples=abc", "n_samples='abc' is not allowed; expected an integer"),
    ("seed=1.5", "seed=1.5 is not allowed; expected an integer"),
    ("plot=maybe", "plot='maybe' is not allowed; expected true or false"),
    ("families=[foo]", "families[0]='foo' is not allowed; expected one of dirichlet, vonmises"),
    ("dtype=float16", "dtype='float16' is not allowed; expected one of float32, float64"),
    ("gaussian.n=5", "gaussian.n=5 is not allowed; expected a list of integers"),
    ("dirichlet.rest=[a]", "dirichlet.rest[0]='a' is not allowed; expected a number"),
    ("dirichlet.grid=5", "dirichlet.grid=5 is not allowed; expected a mapping with keys min, max, num"),
    ("+foo=1", "foo: not a setting; choose from families, estimators, rsvi_B, n_samples, seed"),
    ("+vonmises.target.scale=1", "vonmises.target.scale: not a setting; choose from loc, concentration"),
    ("~n_samples", "n_samples: missing; expected an integer"),
]
#: ranges checked by the dataclasses' __post_init__
OUT_OF_RANGE = [
    ("n_samples=-1", "n_samples=-1 is not allowed; expected an integer >= 2"),
    ("n_samples=1", "n_samples=1 is not allowed; expected an integer >= 2"),
    ("seed=-1", "seed=-1 is not allowed; expected an integer >= 0"),
    ("estimators=[]", "estimators=[] is not allowed; expected a non-empty list"),
    ("estimators=[reparam]", "estimators='reparam' is not allowed; choose from implicit, rsvi, score"),
    ("rsvi_B=[1,-1]", "rsvi_B[1]=-1 is not allowed; expected an integer >= 0"),
    ("rsvi_B=[]", "rsvi_B=[] is not allowed; expected a non-empty list of integers >= 0"),
    ("dirichlet.grid.num=0", "dirichlet.grid.num=0 is not allowed; expected an integer >= 1"),
    ("dirichlet.grid.min=0", "dirichlet.grid.min=0.0 is not allowed; expected a number > 0"),
    (
        "vonmises.grid.max=0.01",
        "vonmises.grid.max=0.01 is not allowed; expected a number >= vonmises.grid.min",
    ),
    (
        "dirichlet.concentrations=[]",
        "dirichlet.concentrations=[] is not allowed; expected null (use the grid)",
    ),
    (
        "dirichlet.concentrations=[1,-2]",
        "dirichlet.concentrations[1]=-2.0 is not allowed; expected a number > 0",
    ),
    ("dirichlet.rest=[]", "dirichlet.rest=[] is not allowed; expected at least one more concentration"),
    ("dirichlet.target=[1,2]", "dirichlet.target=[1.0, 2.0] is not allowed; expected 3 concentrations"),
    (
        "vonmises.target.concentration=0",
        "vonmises.target.concentration=0.0 is not allowed; expected a number > 0",
    ),
    ("vonmises.loc=nan", "vonmises.loc=nan is not allowed; expected a finite number"),
    ("gaussian.n=[10,0]", "gaussian.n[1]=0 is not allowed; expected an integer >= 1"),
    ("gaussian.repetitions=3", "gaussian.repetitions=3 is not allowed; expected an integer >= 4"),
    ("gaussian.theta=inf", "gaussian.theta=inf is not allowed; expected a finite number"),
]


@pytest.mark.parametrize(
    "override, message, by_omegaconf",
    [(o, m, True) for o, m in WRONG_TYPES] + [(o, m, False) for o, m in OUT_OF_RANGE],
)
def test_a_bad_value_is_one_config_error_line_naming_its_key(override, message, by_omegaconf):
    with pytest.raises(ConfigError) as info:
        load_settings(composed(override))
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text, text
    assert isinstance(info.value.__cause__, OmegaConfBaseException) == by_omegaconf
