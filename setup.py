"""What pyproject.toml cannot say: the config tree stays at the repository's top-level conf/ (the
project's layout) and ships inside the wheel as the package ``vae_lab.conf``, where
``vae_lab.config.CONF_DIR`` finds it in an installed copy. Its folders (config groups) are listed as
packages of their own, so that setuptools installs their YAML files as package data."""

from pathlib import Path

from setuptools import find_packages, setup

CONF = Path(__file__).resolve().parent / "conf"
conf_packages = ["vae_lab.conf"] + [
    "vae_lab.conf." + ".".join(p.relative_to(CONF).parts)
    for p in sorted(CONF.rglob("*"))
    if p.is_dir() and not p.name.startswith((".", "_"))
]

setup(
    packages=[*find_packages(include=["vae_lab", "vae_lab.*"]), *conf_packages],
    package_dir={"vae_lab.conf": "conf"},
    # the C++ source of the fused kernels, compiled on first use (vae_lab/distributions/kernels)
    package_data={**{name: ["*.yaml"] for name in conf_packages}, "vae_lab.distributions.kernels": ["*.cpp"]},
)
