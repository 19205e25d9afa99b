"""Speed of the figurnov2018/lda_20news preset (Dirichlet topic model on 20 Newsgroups) on this machine.

    python benchmarks/bench_lda.py [--threads 1 2] [--steps 300] [--repeats 3] [--lightning-steps 600]

Prints, per torch thread count:
  * the time of one training step (ELBO, backward, fused Adam) in a plain loop, for the implicit, RSVI
    B=1 and RSVI B=10 estimators, with the encoder's sparse first layer (the preset's) and a dense one;
  * steps per second of the preset under Lightning, as ``vae-lab train`` builds it (loggers, callbacks,
    progress bar; validation off), for the implicit estimator, after a warm-up;
  * one validation pass (1,000 documents) and the decoder's two forms (matmul vs log-sum-exp);
and the implied duration of the paper's 180,000 steps. Figures are the minimum over ``--repeats``
alternating blocks: on a shared machine the minimum is the least disturbed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import vae_lab.build
from vae_lab.config import CONF_DIR

warnings.filterwarnings("ignore")


def config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=["experiment=figurnov2018/lda_20news", *overrides])


def build(cfg, datamodule):
    torch.manual_seed(0)
    return vae_lab.build.build(cfg, datamodule)[1]


def step_times(datamodule, variants: dict[str, list[str]], steps: int, repeats: int) -> dict[str, float]:
    """ms per plain training step, min over repeats, variants interleaved."""
    batches = [b for _, b in zip(range(steps), iter(datamodule.train_dataloader()), strict=False)]
    runs = {}
    for name, overrides in variants.items():
        model = build(config(overrides), datamodule)
        runs[name] = (model, model.configure_optimizers())
    best = {name: float("inf") for name in variants}
    for _ in range(repeats + 1):  # the first round warms up
        for name, (model, opt) in runs.items():
            start = time.perf_counter()
            for x in batches:
                loss = -model.elbo(x)["surrogate"].mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            best[name] = min(best[name], (time.perf_counter() - start) / len(batches) * 1e3)
    return best


class StepTimer(pl.Callback):
    def __init__(self, skip: int):
        self.skip, self.start, self.steps = skip, None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.skip:
            self.start = time.perf_counter()
        elif trainer.global_step > self.skip:
            self.steps += 1
            self.elapsed = time.perf_counter() - self.start


def lightning_steps_per_second(datamodule, steps: int, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        cfg = config(
            [
                *overrides,
                f"paths.output_dir={out}",
                f"trainer.max_steps={steps}",
                "+trainer.limit_val_batches=0",
            ]
        )
        model = build(cfg, datamodule)
        loggers = [instantiate(c) for c in cfg.logger.values()]
        callbacks = [instantiate(c) for c in cfg.callbacks.values()]
        timer = StepTimer(skip=min(100, steps // 4))
        trainer = instantiate(cfg.trainer, logger=loggers, callbacks=[*callbacks, timer])
        trainer.fit(model, datamodule=datamodule)
        return timer.steps / timer.elapsed


def validation_seconds(datamodule, repeats: int) -> float:
    model = build(config([]), datamodule).eval()
    x = next(iter(datamodule.val_dataloader()))
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            model.elbo(x)
            best = min(best, time.perf_counter() - start)
    return best


def decoder_forms(repeats: int, n: int = 100) -> dict[str, float]:
    torch.manual_seed(0)
    topics = torch.randn(50, 1995, requires_grad=True)
    alpha = torch.full((32, 50), 0.3)
    x = torch.poisson(torch.full((32, 1995), 0.05))
    theta = torch.distributions.Dirichlet(alpha).sample().clamp_min(1e-30).requires_grad_()

    def matmul():
        p = theta @ topics.softmax(-1)
        return (x * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum()

    def logsumexp():
        return (x * (theta.log().unsqueeze(-1) + topics.log_softmax(-1)).logsumexp(-2)).sum()

    best = {}
    for name, f in (("matmul", matmul), ("logsumexp", logsumexp)):
        best[name] = float("inf")
        for _ in range(repeats + 1):
            start = time.perf_counter()
            for _ in range(n):
                f().backward()
            best[name] = min(best[name], (time.perf_counter() - start) / n * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lightning-steps", type=int, default=600)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    data_cfg = config([] if args.data_dir is None else [f"paths.data_dir={args.data_dir}"]).data
    datamodule = instantiate(data_cfg)
    datamodule.setup("fit")
    variants = {
        "implicit": [],
        "implicit, dense 1st layer": ["model.encoder.sparse_input=false"],
        "rsvi B=1": ["estimator=rsvi", "model.estimator.B=1"],
        "rsvi B=10": ["estimator=rsvi", "model.estimator.B=10"],
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"== torch threads: {threads}")
        for name, ms in step_times(datamodule, variants, args.steps, args.repeats).items():
            print(
                f"  plain step  {name:<26} {ms:6.2f} ms  {1e3 / ms:6.0f} steps/s  "
                f"180k steps: {180_000 * ms / 3.6e6:5.2f} h"
            )
        sps = lightning_steps_per_second(datamodule, args.lightning_steps, [f"threads={threads}"])
        print(
            f"  Lightning   implicit, preset's callbacks   {1e3 / sps:6.2f} ms  {sps:6.0f} steps/s  "
            f"180k steps: {180_000 / sps / 3600:5.2f} h"
        )
        val_ms = validation_seconds(datamodule, args.repeats) * 1e3
        print(f"  validation pass (1,000 documents): {val_ms:.0f} ms")
        for name, ms in decoder_forms(args.repeats).items():
            print(f"  decoder {name:<10} forward+backward, batch 32: {ms:6.2f} ms")


if __name__ == "__main__":
    main()
