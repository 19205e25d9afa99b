"""Speed of the figurnov2018/lda_20news preset (Dirichlet topic model on 20 Newsgroups) on this machine.

    python benchmarks/bench_lda.py [--threads 1] [--steps 300] [--rounds 7] [--lightning-steps 600]
        [--device cpu|cuda] [--details]

Prints, per torch thread count, against the goals of issue 12:
  * the time of one training step (ELBO, backward, fused Adam) in a plain loop over the same batches, and
    under Lightning as ``vae-lab train`` builds it (loggers, callbacks, progress bar drawn to nowhere;
    validation off), for the implicit estimator, in --rounds rounds of one block each in alternating
    order; the median of the rounds' ratios with a distribution-free interval (goal <= 1.10);
  * the implied duration of the paper's 180,000 steps under Lightning (goal <= 10 min).
``--details`` adds the plain step of RSVI B=1 and B=10 and of a dense first layer, one validation pass
(1,000 documents) and the decoder's two forms (matmul vs log-sum-exp), each the minimum over ``--repeats``
alternating blocks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import pytorch_lightning as pl
import torch
from _common import quiet, ratio_line, verdict
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import vae_lab.build
from vae_lab.build import configure_torch
from vae_lab.config import CONF_DIR
from vae_lab.data.download import DataError
from vae_lab.errors import one_line
from vae_lab.runs.callback_group import group_callbacks

warnings.filterwarnings("ignore")


def config(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=["experiment=figurnov2018/lda_20news", *overrides])


GOAL_RATIO, GOAL_MINUTES = 1.10, 10.0


def build(cfg, datamodule, device: str = "cpu"):
    torch.manual_seed(0)
    return vae_lab.build.build(cfg, datamodule)[1].to(device)


class PlainLoop:
    """The preset's model trained by a hand-written loop over pre-built batches: the pace to match."""

    def __init__(self, datamodule, overrides: list[str], steps: int, device: str):
        self.batches = [
            b.to(device) for _, b in zip(range(steps), iter(datamodule.train_dataloader()), strict=False)
        ]
        self.model = build(config(overrides), datamodule, device)
        self.opt = self.model.configure_optimizers()

    def ms_per_step(self) -> float:
        model, opt = self.model, self.opt
        start = time.perf_counter()
        for x in self.batches:
            loss = -model.elbo(x)["surrogate"].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync()
        return (time.perf_counter() - start) / len(self.batches) * 1e3


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_times(datamodule, variants: dict[str, list[str]], steps: int, repeats: int, device: str):
    """ms per plain training step, min over repeats, variants interleaved."""
    loops = {name: PlainLoop(datamodule, overrides, steps, device) for name, overrides in variants.items()}
    best = {name: float("inf") for name in variants}
    for _ in range(repeats + 1):  # the first round warms up
        for name, loop in loops.items():
            best[name] = min(best[name], loop.ms_per_step())
    return best


class StepTimer(pl.Callback):
    """Seconds and optimizer steps from the first Lightning batch that ends at or after step ``skip``."""

    multi_step_hooks = "once"  # Lightning's batches, of several steps each (steps_per_batch)

    def __init__(self, skip: int):
        self.skip, self.start, self.first, self.steps = skip, None, 0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is None and trainer.global_step >= self.skip:
            _sync()
            self.start, self.first = time.perf_counter(), trainer.global_step
        elif self.start is not None:
            _sync()
            self.elapsed, self.steps = time.perf_counter() - self.start, trainer.global_step - self.first


def lightning_ms_per_step(datamodule, steps: int, overrides: list[str], device: str) -> float:
    """ms per step of the preset under Lightning, as `vae-lab train` builds it, after a warm-up."""
    with tempfile.TemporaryDirectory() as out, quiet():
        cfg = config(
            [
                *overrides,
                f"paths.output_dir={out}",
                f"trainer.max_steps={steps}",
                "+trainer.limit_val_batches=0",
                *(["trainer=gpu"] if device == "cuda" else []),
            ]
        )
        model = build(cfg, datamodule)
        loggers = [instantiate(c) for c in cfg.logger.values()]
        callbacks = group_callbacks(instantiate(c) for c in cfg.callbacks.values())
        timer = StepTimer(skip=min(100, steps // 4))
        trainer = instantiate(cfg.trainer, logger=loggers, callbacks=[*callbacks, timer])
        trainer.fit(model, datamodule=datamodule)
        return timer.elapsed / timer.steps * 1e3


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
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="blocks of the --details timings")
    parser.add_argument("--rounds", type=int, default=7, help="alternating plain / Lightning rounds")
    parser.add_argument("--lightning-steps", type=int, default=600)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--details", action="store_true", help="RSVI, a dense layer, validation, decoder")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_lda: no CUDA device here; skipped (run with --device cpu)")
        return

    data_cfg = config([] if args.data_dir is None else [f"paths.data_dir={args.data_dir}"]).data
    datamodule = instantiate(data_cfg)
    try:
        datamodule.setup("fit")
    except DataError as err:  # no copy of 20 Newsgroups here, and no network
        print(f"bench_lda: skipped, no 20 Newsgroups data: {one_line(err)}")
        return
    for threads in args.threads:
        # torch as a run sets it (threads, no argument validation, subnormals flushed): without the flush
        # the plain loop's Adam moments of unused word weights go subnormal after ~800 steps
        configure_torch(config([f"threads={threads}"]))
        plain = PlainLoop(datamodule, [], args.steps, args.device)
        plain.ms_per_step()  # warm-up
        plain_ms: list[float] = []
        lightning_ms: list[float] = []
        overrides = [f"threads={threads}"]
        for round_ in range(args.rounds):  # alternating order, so a drift weighs on both
            for which in ("plain", "lightning") if round_ % 2 == 0 else ("lightning", "plain"):
                if which == "plain":
                    plain_ms.append(plain.ms_per_step())
                else:
                    steps = args.lightning_steps
                    lightning_ms.append(lightning_ms_per_step(datamodule, steps, overrides, args.device))
        minutes = 180_000 * statistics.median(lightning_ms) / 6e4
        load = os.getloadavg()[0]
        print(f"== LDA preset, implicit, {args.device}, torch threads {threads}, load {load:.1f}")
        print(
            f"  plain step {statistics.median(plain_ms):.2f} ms, Lightning step "
            f"{statistics.median(lightning_ms):.2f} ms (medians of {args.rounds} rounds)"
        )
        ratios = [a / b for a, b in zip(lightning_ms, plain_ms, strict=True)]
        print(ratio_line("Lightning / plain step", ratios, GOAL_RATIO))
        print(
            f"  180k steps under Lightning: {minutes:.1f} min (goal <= {GOAL_MINUTES:g} min) "
            f"{verdict(minutes <= GOAL_MINUTES)}"
        )
        if args.details:
            details(datamodule, args)
        sys.stdout.flush()


def details(datamodule, args) -> None:
    variants = {
        "implicit, dense 1st layer": ["model.encoder.sparse_input=false"],
        "rsvi B=1": ["estimator=rsvi", "model.estimator.B=1"],
        "rsvi B=10": ["estimator=rsvi", "model.estimator.B=10"],
    }
    for name, ms in step_times(datamodule, variants, args.steps, args.repeats, args.device).items():
        print(f"  plain step  {name:<26} {ms:6.2f} ms  180k steps: {180_000 * ms / 6e4:5.1f} min")
    val_ms = validation_seconds(datamodule, args.repeats) * 1e3
    print(f"  validation pass (1,000 documents): {val_ms:.0f} ms")
    for name, ms in decoder_forms(args.repeats).items():
        print(f"  decoder {name:<10} forward+backward, batch 32: {ms:6.2f} ms")


if __name__ == "__main__":
    main()
