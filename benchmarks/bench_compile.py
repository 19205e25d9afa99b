"""``compile: true`` against eager: the training step of the same MNIST-sized VAE, compiled and not.

    python benchmarks/bench_compile.py [--posterior gaussian vonmises] [--rounds 20] [--device cpu|cuda]

For each posterior, two copies of one model (same weights) are built as `vae-lab train` builds them
(Hydra config, 784 binary inputs, batch 100); one trains on ``VAE.compile_training_loss()``. After the
compile (its time is printed: what a run pays once), both take steps alternately, 20 steps a round, and
the median over rounds of compiled / eager time per step is printed. There is no goal: the figure says
when the option pays (a long run saves (1 - ratio) x its step time per step, against the compile time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch
from hydra import compose, initialize_config_dir

from vae_lab.build import build, configure_torch
from vae_lab.config import CONF_DIR

N, D, BATCH = 6_000, 784, 100
ESTIMATOR = {"gaussian": "reparam"}  # the others: implicit


class _Data:
    input_dim = D


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(posterior: str, rounds: int, device: str) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        overrides = [f"posterior={posterior}", f"estimator={ESTIMATOR.get(posterior, 'implicit')}"]
        cfg = compose("train", overrides=["threads=1", *overrides])
    configure_torch(cfg)
    torch.manual_seed(0)
    x = torch.bernoulli(torch.rand(N, D) * 0.3).to(device)
    eager = build(cfg, _Data())[1].to(device)
    compiled = build(cfg, _Data())[1].to(device)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_training_loss()
    optimizers = {"eager": eager.configure_optimizers(), "compiled": compiled.configure_optimizers()}
    losses = {"eager": eager.training_loss, "compiled": compiled._compiled_loss}
    batches = torch.randperm(N, device=device).split(BATCH)

    def step(name: str, idx: torch.Tensor) -> None:
        loss, _ = losses[name](x[idx])
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[name].step()

    start = time.perf_counter()
    step("compiled", batches[0])
    _sync()
    compile_s = time.perf_counter() - start
    step("eager", batches[0])
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for r in range(rounds):
        for name in ("eager", "compiled") if r % 2 else ("compiled", "eager"):
            start = time.perf_counter()
            for idx in batches[1:21]:
                step(name, idx)
            _sync()
            times[name].append((time.perf_counter() - start) / 20 * 1e3)
    ratio = statistics.median(c / e for c, e in zip(times["compiled"], times["eager"], strict=True))
    eager_ms, compiled_ms = statistics.median(times["eager"]), statistics.median(times["compiled"])
    print(
        f"  {posterior:>10}: compile {compile_s:5.1f} s; step eager {eager_ms:.2f} ms, "
        f"compiled {compiled_ms:.2f} ms; compiled / eager {ratio:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posterior", nargs="+", default=["gaussian", "vonmises"])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_compile: no CUDA device here; skipped (run with --device cpu)")
        return
    warnings.filterwarnings("ignore")
    print(f"== compile: true vs eager, training step, {args.device}, load {os.getloadavg()[0]:.1f}")
    for posterior in args.posterior:
        measure(posterior, args.rounds, args.device)


if __name__ == "__main__":
    main()
