"""`vae-lab variance`: the Hydra task. It loads the settings (:mod:`vae_lab.variance.settings`), runs the
family and Gaussian experiments (:mod:`vae_lab.variance.experiment`), writes ``variance.csv``,
``variance.png``, ``gaussian.csv`` and ``gaussian.png`` into the run directory and prints the tables."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig

import vae_lab.config  # noqa: F401  (registers the resolvers a job needs)
from vae_lab.errors import ConfigError
from vae_lab.variance.experiment import family_experiment, gaussian_experiment
from vae_lab.variance.plots import plot_families, plot_gaussian
from vae_lab.variance.settings import load_settings
from vae_lab.variance.tables import family_tables, gaussian_table

log = logging.getLogger("vae_lab.variance")


def run(cfg: DictConfig, out_dir: Path) -> dict[str, Path]:
    """Check ``cfg``, run the experiments, write the files into ``out_dir``; return the written paths."""
    s = load_settings(cfg)
    torch.manual_seed(s.seed)
    written: dict[str, Path] = {}
    if s.families:
        frames = []
        for family in s.family_names:
            node = getattr(s, family)
            log.info("family %s: concentrations %s", family, node.values())
            frames.append(
                family_experiment(
                    family,
                    node.values(),
                    node.params(),
                    s.estimators,
                    s.rsvi_B,
                    s.n_samples,
                    s.seed,
                    s.torch_dtype,
                )
            )
        frame = pd.concat(frames, ignore_index=True)
        written["variance.csv"] = out_dir / "variance.csv"
        frame.to_csv(written["variance.csv"], index=False)
        text = family_tables(frame)
        print(
            f"Single-sample gradients d/d(concentration) E_q[-log p(z)], {s.n_samples} samples each.\n"
            f"{text}\n"
        )
        log.info("variance table:\n%s", text)
        if s.plot:
            written["variance.png"] = out_dir / "variance.png"
            plot_families(frame, written["variance.png"])
    g = s.gaussian
    if g is not None and g.enabled:
        frame = gaussian_experiment(g.theta, g.n, g.repetitions, s.seed, s.torch_dtype)
        written["gaussian.csv"] = out_dir / "gaussian.csv"
        frame.to_csv(written["gaussian.csv"], index=False)
        text = gaussian_table(frame)
        print(
            f"d/dtheta E_N(theta,1)[z^2] at theta = {g.theta:g} (exact {2 * g.theta:g}), average of N "
            f"single-sample estimates, {g.repetitions} repetitions:\n{text}\n"
        )
        log.info("gaussian table:\n%s", text)
        if s.plot:
            written["gaussian.png"] = out_dir / "gaussian.png"
            plot_gaussian(frame, written["gaussian.png"])
    return written


def task(cfg: DictConfig) -> None:
    """The Hydra task of `vae-lab variance`: an error is one console line (its traceback in variance.log)."""
    from hydra.core.hydra_config import HydraConfig

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        written = run(cfg, out_dir)
    except ConfigError as err:
        log.info("configuration error: %s", err)  # INFO: to variance.log only, the console gets one line
        print(f"vae-lab variance: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - one line on the console, the traceback in variance.log
        log.info("variance experiment failed: %s\n%s", err, traceback.format_exc())  # to variance.log only
        print(
            f"vae-lab variance: error: {type(err).__name__}: {err} (traceback in {out_dir / 'variance.log'})",
            file=sys.stderr,
        )
        sys.exit(1)
    names = ", ".join(written) or "nothing (no families and gaussian.enabled=false)"
    print(f"wrote {names} to {out_dir}")
