"""One training epoch of vae-lab against a plain PyTorch loop with the same model, data and batch size.

Both run in this process, alternating, on 60,000 MNIST-sized (784-dim) binary examples: vae-lab as
`vae-lab train` builds it (Hydra config, Lightning Trainer with its default loggers, checkpointing and
progress bar; validation off; the gradient-variance probe off unless --probe), the baseline as a
hand-written loop over the same tensors with the same MLP sizes, Gaussian posterior, explicit
reparameterization, closed-form KL and fused Adam.

    python benchmarks/bench_train.py [--rounds 7] [--examples 60000] [--batch-size 100] [--device cpu|cuda]

A round is one epoch of each, in alternating order (plain first in even rounds, vae-lab first in odd ones,
so a drift of the machine's speed weighs on both). Prints seconds per epoch for each and the ratio
vae-lab / plain against its goal (at most 1.10) as the median of the rounds' ratios with a
distribution-free interval (``_common.median_interval``: at 7 rounds the range, 98% coverage), in wall time
and in the CPU time of the process (which moves less when other jobs share the cores; on a quiet machine
the two agree). The verdict is "ok" only where the whole interval is within the goal. The progress bar
is drawn to nowhere: its cost stays, its output goes.

vae-lab runs with the config's ``steps_per_batch`` (10: Lightning's per-batch loop once per 10 optimizer
steps; ``--steps-per-batch K`` sets it). Two more loops in the same rounds say where the difference lies:
vae-lab with ``steps_per_batch=1`` (one step per Lightning batch; left out where the main row is that), and
(off with --no-floor) vae-lab's own training step (objective, the logging step's row, the optimizer step),
called by a bare Python loop over the same batches from inside a running fit (``BareLoop``), so without
Lightning's loop around it. Their ratios to the plain loop have no goal.

``--blocks N`` instead splits a step in Lightning's loop into the training step and the rest, within a
single fit (``Blocks``): after 100 steps of warm-up (a quarter of the epoch where that is less), blocks of N
steps in Lightning's loop alternate with blocks of N training steps in a bare loop and N steps of the plain
loop's model (fresh batches from a second shuffled loader over the same data), and the training steps
inside Lightning's batches are timed on their own (N a multiple of ``steps_per_batch``). Alternating every
N steps rather than every epoch keeps a machine's drifting speed out of the difference, so it resolves a
few per cent where epoch rounds cannot; a fit's fixed costs (set-up, the end-of-epoch checkpoint) are left
out. On an AMD EPYC, one step per Lightning batch: 1092 us (10.5%) of a step in Lightning's loop lay
outside the training step, and it took 1.151 (1.131-1.204) of a plain step; with ``steps_per_batch=10``,
271 us (2.8%) and 1.052 (1.023-1.075). Between fits, the bare / plain ratio moved between 1.00 and 1.07
(where each model's tensors happen to lie in memory), more than within one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import warnings

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from _common import clock, median_interval, quiet, ratio_line
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from vae_lab.build import build, configure_torch
from vae_lab.config import CONF_DIR
from vae_lab.data.loader import TensorBatches
from vae_lab.data.step_batches import step_args
from vae_lab.runs.callback_group import group_callbacks

D = 784


class InMemoryData(pl.LightningDataModule):
    def __init__(self, x: torch.Tensor, batch_size: int):
        super().__init__()
        self.x, self.batch_size, self.input_dim = x, batch_size, x.shape[1]

    def train_dataloader(self):
        return TensorBatches(self.x, batch_size=self.batch_size, shuffle=True, seed=0)


GOAL = 1.10


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class BareLoop(pl.Callback):
    """At the start of training, runs the epoch's training steps in a bare Python loop and times them (wall
    and CPU seconds into ``times``), then stops the fit before Lightning's own loop takes a step."""

    def __init__(self, times: list[tuple[float, float]]):
        self.times = times

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.on_train_start()  # the module's own set-up for the step (its direct step), run early
        with clock(self.times), counted_steps(trainer):
            for batch_idx, batch in enumerate(trainer.train_dataloader):
                pl_module.training_step(batch, batch_idx)
            _sync()
        trainer.should_stop = True


@contextlib.contextmanager
def counted_steps(trainer: pl.Trainer):
    """Optimizer steps taken outside Lightning's batches, counted as Lightning's manual loop counts them
    during a batch (its hooks around the step), so that ``global_step`` advances and the steps that log
    (every ``log_every_n_steps``) log, as in Lightning's own loop."""
    manual = trainer.fit_loop.epoch_loop.manual_optimization
    manual.on_run_start()
    try:
        yield
    finally:
        manual.on_run_end()


class Blocks(pl.Callback):
    """--blocks: blocks of ``size`` Lightning batches alternating with blocks of ``size`` training steps in a
    bare loop and ``size`` steps of the plain loop's model, in one fit (the module's docstring); per-step
    seconds of each block in ``lightning``, ``inside`` (the training step within Lightning's batches),
    ``bare`` and ``plain``."""

    def __init__(self, x: torch.Tensor, batch_size: int, size: int, warmup: int = 100, device: str = "cpu"):
        self.size, self.warmup, self.device = size, warmup, device
        self.lightning: list[float] = []
        self.inside: list[float] = []
        self.bare: list[float] = []
        self.plain: list[float] = []
        self._plain = PlainVAE().to(device)
        self._plain_opt = torch.optim.Adam(self._plain.parameters(), lr=1e-3, fused=True)
        self._timed_steps: list[float] = [0.0, 0]
        self._mark: float | None = None
        self.steps = 0
        self._batches = self._stream(x, batch_size)

    @staticmethod
    def _stream(x: torch.Tensor, batch_size: int):
        loader = TensorBatches(x, batch_size=batch_size, shuffle=True, seed=1)
        while True:
            yield from loader

    #: its batch hook needs Lightning's batches only, with the last step's index (vae_lab.model.multi_step)
    multi_step_hooks = "once"

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step, timed_steps = pl_module.training_step, self._timed_steps

        def timed(batch, batch_idx: int) -> torch.Tensor:  # Lightning reads its signature
            start, before = time.perf_counter(), trainer.global_step
            out = step(batch, batch_idx)
            timed_steps[0] += time.perf_counter() - start  # seconds and optimizer steps, which a batch
            timed_steps[1] += trainer.global_step - before  # of several steps (steps_per_batch) counts
            return out

        pl_module.training_step = timed

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        done = step_args(batch, batch_idx, end=True)[1] + 1  # Lightning's steps in this epoch so far
        if done < self.warmup or (done - self.warmup) % self.size:
            return
        now = time.perf_counter()
        if self._mark is not None:
            self.lightning.append((now - self._mark) / self.size)
            self.inside.append(self._timed_steps[0] / self._timed_steps[1])
        with counted_steps(trainer):
            start = time.perf_counter()
            for i in range(self.size):  # the batch drawn right before its step, as Lightning's fetcher does
                pl_module.training_step(next(self._batches).to(self.device), i)  # through `timed`
            _sync()
            self.bare.append((time.perf_counter() - start) / self.size)
        model, opt = self._plain, self._plain_opt
        start = time.perf_counter()
        for _ in range(self.size):
            plain_step(model, opt, next(self._batches).to(self.device))
        _sync()
        self.plain.append((time.perf_counter() - start) / self.size)
        self._timed_steps[:] = [0.0, 0]  # the next Lightning block's steps only
        self._mark = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.steps = trainer.global_step  # optimizer steps of the fit, the bare loop's included


def blocks_report(blocks: Blocks) -> None:
    n = len(blocks.lightning)
    bare, plain = blocks.bare[:n], blocks.plain[:n]  # the blocks that ran just before each Lightning block
    us = 1e6
    print(
        f"  blocks of {blocks.size} steps, {n} of each (medians): a step in Lightning's loop "
        f"{statistics.median(blocks.lightning) * us:.0f} us, its training step "
        f"{statistics.median(blocks.inside) * us:.0f} us, the step in a bare loop "
        f"{statistics.median(bare) * us:.0f} us, the plain loop's step {statistics.median(plain) * us:.0f} us"
    )
    for name, values in (
        ("outside the training step", [a - b for a, b in zip(blocks.lightning, blocks.inside, strict=True)]),
        ("over the bare loop's step", [a - b for a, b in zip(blocks.lightning, bare, strict=True)]),
    ):
        median, low, high, cover = median_interval(values)
        share = median / statistics.median(blocks.lightning)
        print(
            f"  Lightning's loop {name}: {median * us:.0f} us a step ({cover:.0%} interval "
            f"{low * us:.0f}-{high * us:.0f}), {share:.1%} of its step"
        )
    for name, top in (("a step in Lightning's loop", blocks.lightning), ("the bare loop's step", bare)):
        median, low, high, cover = median_interval([a / b for a, b in zip(top, plain, strict=True)])
        print(
            f"  {name} / the plain loop's step: {median:.3f} ({cover:.0%} interval {low:.3f}-{high:.3f}; "
            "no goal: the epoch's ratio also counts a fit's fixed costs)"
        )


def vae_lab_epoch(
    x: torch.Tensor,
    batch_size: int,
    out_dir: str,
    probe: bool,
    device: str,
    times: list[tuple[float, float]],
    bare: bool = False,
    extra: pl.Callback | None = None,
    steps_per_batch: int | None = None,
) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "posterior=gaussian",
                "estimator=reparam",
                "trainer.max_epochs=1",
                "+trainer.limit_val_batches=0",
                f"paths.output_dir={out_dir}",
                f"callbacks.grad_variance.enabled={probe}",
                *([f"steps_per_batch={steps_per_batch}"] if steps_per_batch else []),
                *(["trainer=gpu"] if device == "cuda" else []),
            ],
        )
    data = InMemoryData(x, batch_size)
    _, model = build(cfg, data)
    loggers = [instantiate(c) for c in cfg.logger.values()]
    callbacks = group_callbacks(instantiate(c) for c in cfg.callbacks.values())
    if bare:  # the steps timed inside the fit, by BareLoop
        callbacks.append(BareLoop(times))
    if extra is not None:
        callbacks.append(extra)
    with quiet():
        trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks, enable_progress_bar=True)
        with contextlib.nullcontext() if bare else clock(times):
            trainer.fit(model, datamodule=data)
            _sync()


class PlainVAE(nn.Module):
    def __init__(self, d: int = D, h: int = 200, k: int = 10):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2 * k))
        self.dec = nn.Sequential(nn.Linear(k, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, d))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        loc, raw = self.enc(x).chunk(2, -1)
        scale = F.softplus(raw) + 1e-4
        z = loc + scale * torch.randn_like(loc)
        recon = -F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = (0.5 * (loc**2 + scale**2) - scale.log() - 0.5).sum(-1)
        return -(recon - kl).mean()


def plain_epoch(x: torch.Tensor, batch_size: int, device: str, times: list[tuple[float, float]]) -> None:
    model = PlainVAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(0)
    x = x.to(device)
    with clock(times):
        for idx in torch.randperm(x.shape[0], generator=gen).split(batch_size):
            plain_step(model, opt, x[idx.to(device)])
        _sync()


def plain_step(model: PlainVAE, opt: torch.optim.Optimizer, batch: torch.Tensor) -> None:
    loss = model.loss(batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", "--repeats", dest="rounds", type=int, default=7)
    parser.add_argument("--examples", type=int, default=60_000, help="examples an epoch (MNIST's 60,000)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (vae-lab's default is 1)")
    parser.add_argument(
        "--probe", action="store_true", help="keep the gradient-variance probe on (default off)"
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--no-floor", dest="floor", action="store_false", help="skip the bare loop of vae-lab's step"
    )
    parser.add_argument(
        "--blocks", type=int, metavar="N", help="only the split of a Lightning batch, blocks of N steps"
    )
    parser.add_argument(
        "--steps-per-batch", type=int, metavar="K", help="vae-lab's steps_per_batch (default: the config's)"
    )
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_train: no CUDA device here; skipped (run with --device cpu)")
        return
    warnings.filterwarnings("ignore")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        configure_torch(compose("train", overrides=[f"threads={args.threads}"]))  # as a run sets torch
    torch.manual_seed(0)
    x = torch.bernoulli(torch.rand(args.examples, D) * 0.3)
    if args.blocks:
        batches = -(-args.examples // args.batch_size)
        blocks = Blocks(x, args.batch_size, args.blocks, min(100, batches // 4), args.device)
        with tempfile.TemporaryDirectory() as out:
            vae_lab_epoch(
                x,
                args.batch_size,
                out,
                args.probe,
                args.device,
                [],
                extra=blocks,
                steps_per_batch=args.steps_per_batch,
            )
        print(
            f"== a step in Lightning's loop, split ({args.examples:,} examples, {args.device}, "
            f"steps_per_batch {args.steps_per_batch or 'as configured'}, load {os.getloadavg()[0]:.1f})"
        )
        blocks_report(blocks)
        return
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "vae-lab": []}
    if args.steps_per_batch != 1:
        runs["one step"] = []  # vae-lab with steps_per_batch=1: what several steps a batch gain
    if args.floor:
        runs["bare"] = []
    order = tuple(runs)
    with tempfile.TemporaryDirectory() as out:
        vae_lab_epoch(x, args.batch_size, out, args.probe, args.device, [])  # warm-up: first-use costs
        for round_ in range(args.rounds):  # alternating order, so a drift weighs on all alike
            for which in order if round_ % 2 == 0 else order[::-1]:
                if which == "plain":
                    plain_epoch(x, args.batch_size, args.device, runs[which])
                    continue
                steps = 1 if which == "one step" else args.steps_per_batch
                vae_lab_epoch(
                    x,
                    args.batch_size,
                    out,
                    args.probe,
                    args.device,
                    runs[which],
                    which == "bare",
                    None,
                    steps,
                )
    print(
        f"== one MNIST-sized epoch ({args.examples:,} examples), {args.device}, threads "
        f"{torch.get_num_threads()}, batch {args.batch_size}, probe {args.probe}, steps_per_batch "
        f"{args.steps_per_batch or 'as configured'}, load {os.getloadavg()[0]:.1f}"
    )
    for kind, k in (("wall", 0), ("CPU", 1)):
        p, v = [t[k] for t in runs["plain"]], [t[k] for t in runs["vae-lab"]]
        for name, times in (("plain PyTorch loop ", p), ("vae-lab (Lightning)", v)):
            listed = ", ".join(f"{t:.2f}" for t in times)
            print(f"  {kind} time, {name}: median {statistics.median(times):7.3f} s/epoch (runs: {listed})")
        print(ratio_line(f"vae-lab / plain, {kind} time", [a / b for a, b in zip(v, p, strict=True)], GOAL))
        for which, what in (
            ("one step", "vae-lab with steps_per_batch=1 / plain"),
            ("bare", "vae-lab's step in a bare loop / plain"),
        ):
            if which in runs:
                median, low, high, cover = median_interval(
                    [a[k] / b for a, b in zip(runs[which], p, strict=True)]
                )
                print(
                    f"  {what}, {kind} time (no goal: where the rest lies): "
                    f"{median:.3f} ({cover:.0%} interval {low:.3f}-{high:.3f})"
                )


if __name__ == "__main__":
    main()
