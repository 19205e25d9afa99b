"""`vae-lab eval ckpt=PATH [split=test] [key=value ...]`: re-score a checkpoint, rebuilt from its own config.

The checkpoint carries its run's config (:mod:`vae_lab.checkpoint`); the CLI puts it in Hydra's config
store as the option ``run: checkpoint``, which ``conf/eval.yaml`` composes at the top level. So the
command line overrides it as it would a training run (``model.iw_samples=5000``,
``data.eval_batch_size=100``, ``seed=1``), and data and outputs are found where this machine keeps them
(``paths``). The task builds the data module and the VAE with :func:`vae_lab.build.build`, loads the
checkpoint's weights and runs Lightning's test loop over the chosen split (:func:`score`): the ELBO terms,
the importance-weighted NLL with ``model.iw_samples`` samples, and the perplexity for count data, named
``{split}/elbo``, ``{split}/nll``, ... It writes ``eval.json`` to its own directory
(``outputs/eval/<date>/<time>/``) and prints the table.

A run's own test phase calls :func:`score` too, seeded with the run's ``seed`` right before the loop, so
re-scoring a run's best checkpoint with the same seed gives its ``test/*`` metrics again (to float
rounding, on the same machine).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from vae_lab.errors import ConfigError, check, one_line
from vae_lab.runs.summary import task_overrides, write_json

if TYPE_CHECKING:
    import pytorch_lightning as pl

log = logging.getLogger("vae_lab.eval")

# Lightning asks for the callbacks of the training run when it loads a checkpoint, which scoring does
# not need; and its own pytree code trips a torch deprecation (as in vae_lab/train.py).
warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks used to create")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

SPLITS = ("train", "val", "test")
RESULT = "eval.json"
PER_EXAMPLE = "per_example.csv"
PER_EXAMPLE_COLUMNS = ("elbo", "recon", "kl", "nll")
#: keys of a run's config that eval does not use (it logs nothing, saves nothing, trains nothing)
NOT_USED = ("logger", "callbacks", "resume", "test", "task_name", "preset_for")


def score(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: Any,
    split: str,
    seed: int,
    ckpt_path: str | None = None,
) -> dict[str, float]:
    """The metrics of the test loop over ``split`` (``{split}/elbo``, ``/kl``, ``/recon``, ``/nll``,
    ``/perplexity`` for count data), with the weights of ``ckpt_path`` (Lightning's ``"best"`` works) or
    the model's own.

    Every random number the loop draws (the ELBO's latent samples, the K importance samples) comes from
    torch's global generator, seeded with ``seed`` right before the loop; the batches of
    ``datamodule.split_dataloader(split)`` come in a fixed order. So the numbers depend on the weights,
    the data, the seed and the settings only, not on what ran in the process before.

    The loop runs on all the cores the job has (``set_threads(None)``: a joblib job's share, a Ray job's
    CPUs; a DDP rank keeps its own), whatever ``threads`` the training used, and restores them after.
    """
    import pytorch_lightning as pl  # here: the CLI imports this module before Hydra sets up logging
    import torch

    from vae_lab.build import set_threads

    check(split in SPLITS, "split", f"one of {', '.join(SPLITS)}", split)
    model.test_split = split
    pl.seed_everything(seed, workers=True, verbose=False)
    threads = torch.get_num_threads()
    if trainer.world_size == 1:  # the IW NLL's large products use every core the job has (not DDP ranks)
        set_threads(None)
    try:
        if split == "test":  # through the data module's hooks, as a run's own test phase always did
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        else:
            loader = datamodule.split_dataloader(split)
            trainer.test(model, dataloaders=loader, ckpt_path=ckpt_path, verbose=False)
    finally:
        model.test_split = "test"
        torch.set_num_threads(threads)
    return {
        k: float(v)
        for k, v in sorted(trainer.callback_metrics.items())
        if k.startswith(f"{split}/") and torch.as_tensor(v).numel() == 1
    }


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """The eval task: score ``cfg.ckpt`` on ``cfg.split``; write ``eval.json``; print the table."""
    from vae_lab.build import build, configure_torch, instantiate_key

    started = time.time()
    check(cfg.split in SPLITS, "split", f"one of {', '.join(SPLITS)}", cfg.split)
    ckpt = Path(str(cfg.ckpt))
    out_dir = Path(cfg.paths.output_dir)
    configure_torch(cfg)
    datamodule, model = build(cfg)
    bar = _progress_bar()
    trainer = instantiate_key(
        cfg,
        "trainer",
        logger=False,
        callbacks=[bar] if bar is not None else [],
        enable_checkpointing=False,
        enable_progress_bar=bar is not None,
        enable_model_summary=False,
        precision=f"{cfg.precision}-true",
    )
    model.per_example = [] if cfg.get("per_example", False) else None  # true or false (checked by the CLI)
    try:
        metrics = score(trainer, model, datamodule, cfg.split, cfg.seed, ckpt_path=str(ckpt))
    except RuntimeError as err:
        if "loading state_dict" not in str(err):
            raise
        first = one_line(str(err).partition("\n")[2], limit=1)  # under "Error(s) in loading state_dict"
        raise ConfigError(
            "ckpt",
            "",
            detail=f"ckpt={ckpt}: its weights do not fit the model of this config ({first}); "
            "overrides may change how the model is scored, not its architecture",
        ) from err
    result = {
        "ckpt": str(ckpt.resolve()),
        "split": cfg.split,
        "seed": cfg.seed,
        "iw_samples": cfg.model.get("iw_samples"),
        "overrides": task_overrides(),
        "metrics": metrics,
        "duration_s": round(time.time() - started, 3),
    }
    write_json(out_dir / RESULT, result)
    if model.per_example is not None:
        _write_per_example(out_dir / PER_EXAMPLE, model.per_example)
    log.info("%s: %s", RESULT, result)
    print(table(result))
    written = RESULT if model.per_example is None else f"{RESULT} and {PER_EXAMPLE}"
    print(f"vae-lab eval: {written} in {out_dir}")
    return result


def _write_per_example(path: Path, batches: list[Any]) -> None:
    """``per_example.csv``: a row per example of the split, in the split's order (``index`` 0, 1, ...), with
    its ELBO, reconstruction term, KL and importance-weighted NLL (nats); the metrics of ``eval.json`` are
    their means. Shows which examples a mean stands on (one outlier can move it by nats)."""
    import torch

    rows = torch.cat(batches).double().numpy()
    with path.open("w") as file:
        file.write(",".join(("index", *PER_EXAMPLE_COLUMNS)) + "\n")
        for i, row in enumerate(rows):
            file.write(f"{i}," + ",".join(repr(float(v)) for v in row) + "\n")


def _progress_bar() -> Any:
    """The test loop's progress: a bar that moves every batch where the output is a terminal; in a sweep,
    lines in eval.log (:mod:`vae_lab.runs.progress`); None (quiet) where the output is piped, as in tests."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from vae_lab.runs.progress import progress_bar

    sweep = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if not sweep and not sys.stdout.isatty():
        return None
    return progress_bar(refresh_rate=1)


def table(result: dict[str, Any]) -> str:
    """The metrics of an eval result as a small text table, with what was scored above it."""
    metrics = result["metrics"]
    split = result["split"]
    lines = [
        f"checkpoint {result['ckpt']}",
        f"split {split}, seed {result['seed']}, {split}/nll from {result['iw_samples']} importance samples",
        "",
    ]
    width = max([len("metric"), *map(len, metrics)])
    lines.append(f"{'metric':<{width}}  {'value':>14}")
    lines += [f"{name:<{width}}  {value:>14.6f}" for name, value in metrics.items()]
    return "\n".join(lines)
