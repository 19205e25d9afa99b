"""The Hydra task behind `vae-lab train`: seed, instantiate, fit, test, return the optimized metric.

Everything that trains is built from the config (:func:`vae_lab.build.build` for the data and the whole
VAE, Hydra's ``instantiate`` for callbacks, loggers and the trainer); this module only wires the pieces
together and records the outcome in ``summary.json``. The test phase scores the best checkpoint exactly
as `vae-lab eval` does (:func:`vae_lab.eval.score`). With ``resume`` set, the job continues the run
already in its directory; what a run directory records, and how a stopped run is continued, is
:mod:`vae_lab.runs`.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import vae_lab.config  # noqa: F401  (registers the resolvers a job needs, also in launcher workers)
from vae_lab.build import build, configure_torch, instantiate_key
from vae_lab.distributed import global_rank
from vae_lab.errors import check
from vae_lab.eval import score
from vae_lab.runs.callback_group import group_callbacks
from vae_lab.runs.checkpoints import ResumePoint, stopped
from vae_lab.runs.locate import completed_run
from vae_lab.runs.signals import Interrupted, StopSignals
from vae_lab.runs.summary import OPTIMIZED_METRIC, Status, Summary, task_overrides
from vae_lab.seeds import derived_seed

log = logging.getLogger("vae_lab.train")

# The CSV logger shares the run directory with Hydra's .hydra/ and train.log by design; and Lightning's
# own pytree code trips a torch deprecation. Neither is actionable for a user.
warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# A resumed run writes into its own earlier checkpoint folder on purpose.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def train(cfg: DictConfig) -> float:
    """Run one training job; return the best ``val/elbo`` (what sweepers maximize).

    Failures are written to ``summary.json`` (status ``failed`` and the error) and re-raised. SIGINT
    and SIGTERM stop the fit after the current step with a checkpoint (status ``interrupted``) and
    raise :class:`vae_lab.runs.Interrupted`. With ``resume`` set, a run that completed in this
    directory is not trained again (its best ``val/elbo`` is returned); any other continues from its
    newest checkpoint, its logs trimmed to that checkpoint.
    """
    command = cfg.get("preset_for", "train")  # set by presets of other commands (toy_variance)
    check(
        command == "train",
        "experiment",
        f"a preset for `vae-lab train`; this one is for `vae-lab {command}`",
        HydraConfig.get().runtime.choices.get("experiment") if HydraConfig.initialized() else None,
    )
    run_dir = Path(cfg.paths.output_dir)
    resuming = cfg.get("resume") not in (None, False)
    if resuming and (previous := completed_run(run_dir, task_overrides())) is not None:
        best = previous.best_score if previous.best_score is not None else math.nan
        log.info("resume: %s completed already; not trained again", run_dir)
        print(f"vae-lab train: completed already; best val/elbo {best:.4f}; outputs in {run_dir}")
        return best
    started = time.time()
    # wall time before the stop: summary.json's record of it, or the checkpoint's (below) where larger
    earlier_s = Summary.earlier_duration(run_dir) if resuming else 0.0
    rank = global_rank()  # DDP: only rank 0 writes to the run directory
    summary = (
        Summary.start(run_dir, task_overrides(), resuming)
        if rank == 0
        else _Unwritten(Status.RUNNING, str(run_dir))
    )
    trainer: pl.Trainer | None = None
    callbacks: list[Any] = []
    start = ResumePoint()
    with StopSignals() as stops:
        try:
            configure_torch(cfg)
            pl.seed_everything(cfg.seed, workers=True, verbose=False)
            datamodule, model = build(cfg)
            if cfg.get("compile", False):
                _announce("compile: true: compiling the training objective at the first step (~1 minute)")
                model.compile_training_loss()
            if rank:  # DDP: rank 0's initial weights are broadcast; each rank draws its own latent samples
                torch.manual_seed(derived_seed(cfg.seed, rank))
            callbacks = [instantiate_key(cfg, f"callbacks.{name}") for name in cfg.callbacks]
            start = ResumePoint.find(callbacks, resuming)
            earlier_s = max(earlier_s, start.elapsed_s)  # a SIGKILL records no time but its checkpoints'
            loggers = [
                instantiate_key(cfg, f"logger.{name}", **start.logger_kwargs(cfg.logger[name]))
                for name in cfg.logger
            ]
            if rank == 0:
                start.trim_logs(loggers, run_dir)
            trainer = instantiate_key(  # probes and views in one group: fewer hook calls per step
                cfg,
                "trainer",
                logger=loggers,
                callbacks=group_callbacks(callbacks),
                precision=f"{cfg.precision}-true",
            )
            if rank == 0:
                _log_hparams(loggers, _flat_hparams(cfg))
            if start.checkpoint is not None:
                summary.resumed_from = str(start.checkpoint)
                log.info("resuming from %s (step %d)", start.checkpoint, start.step)

            trainer.fit(model, datamodule=datamodule, ckpt_path=start.checkpoint)
            metrics = _scalars(trainer.callback_metrics)
            best = _best_score(trainer, metrics)
            if cfg.test:  # seeded like `vae-lab eval` of the best checkpoint, which gives the same numbers
                # the best checkpoint's path, not Lightning's "best": that warns with two ModelCheckpoints
                # (best.ckpt's and last.ckpt's), though it means the same file
                best_ckpt = _best_path(trainer)
                metrics.update(score(trainer, model, datamodule, "test", cfg.seed, ckpt_path=best_ckpt))
            summary.complete(
                metrics=metrics,
                best={OPTIMIZED_METRIC: best},
                best_checkpoint=_best_path(trainer),
                steps=trainer.global_step,
                epochs=trainer.current_epoch,
                duration_s=round(earlier_s + time.time() - started, 3),
            )
            log.info("outputs in %s", run_dir)
            if rank == 0:
                print(
                    f"vae-lab train: {summary.status.value}; best val/elbo {best:.4f}; outputs in {run_dir}"
                )
            if stops.received is not None:  # too late to stop this job, but a sweep stops here
                raise Interrupted(stops.received, trainer.global_step, run_dir, completed=True)
            return best
        except Interrupted:
            raise
        except BaseException as err:  # noqa: BLE001 - recorded, then re-raised
            step = max(trainer.global_step if trainer is not None else 0, start.step)
            duration_s = round(earlier_s + time.time() - started, 3)
            signum = stops.received
            if signum is None and isinstance(err, KeyboardInterrupt):
                signum = signal.SIGINT  # raised before the handlers were in place
            if signum is None:
                summary.fail(f"{type(err).__name__}: {err}", steps=step, duration_s=duration_s)
                log.info("run failed: %s\n%s", err, traceback.format_exc())  # to train.log only
                raise
            interrupted = stopped(signum, step, run_dir, callbacks, since=started)
            summary.interrupt(
                signal.Signals(signum).name, interrupted.checkpoint, steps=step, duration_s=duration_s
            )
            log.info("run interrupted: %s\n%s", interrupted, traceback.format_exc())
            raise interrupted from err
        finally:
            torch.set_flush_denormal(False)  # torch's default again (configure_torch set it for the run)


class _Unwritten(Summary):
    """The summary of a DDP rank other than 0: kept in memory, never written."""

    def write(self) -> None:
        pass


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items()) if torch.as_tensor(v).numel() == 1}


def _has_best(trainer: pl.Trainer) -> bool:
    return bool(trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path)


def _best_path(trainer: pl.Trainer) -> str | None:
    return trainer.checkpoint_callback.best_model_path if _has_best(trainer) else None


def _best_score(trainer: pl.Trainer, metrics: dict[str, float]) -> float:
    callback = trainer.checkpoint_callback
    if callback is not None and callback.best_model_score is not None:
        return float(callback.best_model_score)
    return metrics.get(OPTIMIZED_METRIC, math.nan)


#: The metric columns of TensorBoard's hparams tab: the same keys in every run, so a sweep compares in
#: one table (a key a run never logs, e.g. test/perplexity on images, is left blank).
HPARAMS_METRICS: tuple[str, ...] = (
    "val/elbo",
    "val/kl",
    "val/recon",
    "test/elbo",
    "test/kl",
    "test/recon",
    "test/nll",
    "test/perplexity",
    "grad/var/encoder",
    "grad/var/decoder",
)


def _log_hparams(loggers: list[Any], params: dict[str, Any]) -> None:
    """Record the flat hyperparameters with every logger. TensorBoard gets an hparams-plugin summary
    naming :data:`HPARAMS_METRICS` (Lightning's ``log_hyperparams`` writes one only together with
    placeholder metric values, which would show up as data points)."""
    from pytorch_lightning.loggers import TensorBoardLogger
    from torch.utils.tensorboard.summary import hparams

    for logger in loggers:
        logger.log_hyperparams(params)  # hparams.yaml
        if isinstance(logger, TensorBoardLogger):
            writer = logger.experiment._get_file_writer()
            for summary in hparams(params, dict.fromkeys(HPARAMS_METRICS, math.nan)):
                writer.add_summary(summary)


def _flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The chosen options and scalar settings, flattened with dotted keys (for the hparams tab)."""
    flat: dict[str, Any] = {}
    try:
        flat.update(
            {
                f"choice/{k}": v
                for k, v in HydraConfig.get().runtime.choices.items()
                if not k.startswith("hydra") and v is not None
            }
        )
    except ValueError:
        pass
    container = OmegaConf.to_container(cfg, resolve=True)

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k not in ("paths", "logger", "callbacks", "hydra", "natural_prior"):
                    walk(f"{prefix}{k}." if prefix or k else k, v)
        elif isinstance(value, (int, float, str, bool)) and not prefix.endswith("_target_."):
            flat[prefix.rstrip(".")] = value

    walk("", container)
    return flat


def _announce(message: str) -> None:
    """A line in train.log and on the console (which shows no INFO records), for a pause a user would
    otherwise take for a hang."""
    log.info(message)
    if global_rank() == 0:
        print(f"vae-lab: {message}", file=sys.stderr, flush=True)
