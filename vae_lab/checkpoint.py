"""The run config that every vae-lab checkpoint carries, so that `vae-lab eval` rebuilds a model from the
checkpoint alone (no run directory, no command line needed).

A model built by :func:`vae_lab.build.build` remembers its run's config; ``VAE.on_save_checkpoint``
stores it under the key ``"vae_lab"`` beside Lightning's own entries::

    checkpoint["vae_lab"] = {"format": 1, "version": "0.1.0", "config": {...}}

``config`` is the composed config of the run as a plain dict, *unresolved* (``${model.latent_dim}``
stays an interpolation) and without ``paths`` and ``hydra``: where data and outputs live belongs to the
machine that evaluates, not to the run, and is composed afresh there (``data.data_dir`` is
``${paths.data_dir}``). ``format`` changes whenever a config stored by one vae-lab could no longer build
the same model in another (a moved key, a renamed class); a checkpoint of another format is refused with
one line rather than rebuilt wrongly.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vae_lab.errors import ConfigError, one_line

KEY = "vae_lab"
FORMAT = 1
#: parts of a run's config not stored: machine-specific locations, recomposed where the model is evaluated
NOT_STORED = ("paths", "hydra")


class CheckpointError(ConfigError):
    """A checkpoint that cannot be evaluated; the message is one line naming ``key`` (``ckpt``)."""

    def __init__(self, detail: str, key: str = "ckpt") -> None:
        super().__init__(key, "", detail=detail)


@functools.cache  # importlib.metadata scans sys.path: 2 ms, and every checkpoint written asks
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("vae-lab")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """What a checkpoint stores of the run config ``cfg``: a plain dict, interpolations kept."""
    config = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(config, dict)
    return {k: v for k, v in config.items() if k not in NOT_STORED}


def record(config: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint entry for a run config (see the module docstring)."""
    return {"format": FORMAT, "version": version(), "config": config}


def read_config(path: str | Path, key: str = "ckpt") -> dict[str, Any]:
    """The run config stored in the checkpoint at ``path``; raises :class:`CheckpointError` with one line
    (naming ``key=path``) for a missing or unreadable file, a file that is not a vae-lab checkpoint, or one
    written in another checkpoint format."""
    import torch

    where = f"{key}={path}"
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{where}: no such file" if not path.exists() else f"{where}: not a file", key)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any file torch cannot unpickle safely: one line, no traceback
        text = one_line(str(err), limit=1)
        first = f"{type(err).__name__}: {text}" if text else type(err).__name__
        raise CheckpointError(f"{where}: not a readable checkpoint ({first})", key) from err
    entry = checkpoint.get(KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise CheckpointError(
            f"{where}: not a vae-lab checkpoint, or one written before vae-lab stored its run config in "
            f"checkpoints (no '{KEY}' entry); retrain it with this vae-lab",
            key,
        )
    if entry.get("format") != FORMAT:
        raise CheckpointError(
            f"{where}: written by vae-lab {entry.get('version', '?')} in checkpoint format "
            f"{entry.get('format')!r}; this vae-lab ({version()}) reads format {FORMAT} only",
            key,
        )
    return entry["config"]
