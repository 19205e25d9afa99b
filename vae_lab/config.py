"""Where the config tree lives, vae-lab's OmegaConf resolvers, and look-ups over config groups."""

from __future__ import annotations

import os
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.utils import get_class
from omegaconf import OmegaConf

if TYPE_CHECKING:  # the CLI imports this module; torch is for the commands that train (tests/test_startup.py)
    from torch.distributions import Distribution


def _conf_dir() -> Path:
    """The config tree: the package ``vae_lab.conf`` of an installed wheel (the top-level conf/ is
    mapped to it at build time by setup.py), else the checkout's top-level conf/ (a source
    tree or an editable install)."""
    packaged = Path(str(resources.files("vae_lab") / "conf"))
    if (packaged / "train.yaml").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "conf"


CONF_DIR = _conf_dir()

# conf/hydra/launcher/ray.yaml takes the name of the Ray launcher plugin's own option on purpose (users
# type hydra/launcher=ray); Hydra validates it against that option's schema and warns, at every
# composition, that matching a schema by name is deprecated. Nothing a user can act on.
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")


def group_options(group: str) -> list[str]:
    """The options of a config group, as users type them (file names under conf/<group>/)."""
    folder = CONF_DIR / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


def estimators_for(q: Distribution) -> list[str]:
    """Names of the estimator options whose class supports the distribution ``q`` (derived from what the
    distribution can do: :mod:`vae_lab.distributions.capabilities`)."""
    names = []
    for name in group_options("estimator"):
        cls = get_class(OmegaConf.load(CONF_DIR / "estimator" / f"{name}.yaml")["_target_"])
        if cls.supports(q):
            names.append(name)
    return names


def unique_dir(path: str) -> str:
    """Create and return ``path``, or ``path-1``, ``path-2``, ... if it exists: mkdir is atomic, so two
    runs started in the same second get different directories. Cached by OmegaConf per config, and Hydra
    copies that cache into every job of a sweep, so one run resolves it once."""
    candidate, n = path, 0
    while True:
        try:
            os.makedirs(candidate, exist_ok=False)
            return candidate
        except FileExistsError:
            n += 1
            candidate = f"{path}-{n}"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("vae_lab.unique_dir"):
        OmegaConf.register_new_resolver("vae_lab.unique_dir", unique_dir, use_cache=True)


register_resolvers()
