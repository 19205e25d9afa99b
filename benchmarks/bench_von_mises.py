"""Speed of vae_lab's von Mises ``rsample`` + backward, against torch's Gamma (and VonMises) samplers.

    python benchmarks/bench_von_mises.py [--n 1000000] [--repeats 7] [--dtype float32] [--threads N]
                                         [--device cpu|cuda]

For ``n`` samples, one per concentration, two rows of concentrations: drawn once log-uniformly in
[0.1, 100] (a fixed seed), and all equal to 2. For each row, measured in this process, interleaved
(so that a slow patch of a shared machine hits all of them alike), median of ``repeats`` rounds:

1. vae_lab ``VonMises.rsample`` + ``backward`` of the sum (implicit gradient w.r.t. loc and concentration);
2. ``torch.distributions.Gamma.rsample`` + ``backward`` (shape = the same concentrations, rate 1);
3. (mixed row only) ``torch.distributions.VonMises.sample`` (no gradient; float64 internally).

Goals: (1) / (2) <= 0.5 in both rows, and (3) / (1) >= 5. Prints one line per ratio, with its goal and
``ok`` or ``NOT met``. Threads: torch's default for the machine unless ``--threads`` is given; on a machine
shared with other jobs, use ``--threads 1`` for stable figures (with more threads than idle cores every
parallel kernel waits for a descheduled thread). ``--device cuda`` skips, with a message, where no GPU is.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from vae_lab.distributions.von_mises import VonMises

_GOAL_VS_GAMMA = 0.5
_GOAL_VS_TORCH = 5.0


def _median_seconds(
    fns: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None]
) -> dict[str, float]:
    """Median wall time of each function over ``repeats`` rounds, the functions interleaved in a round."""
    for fn in fns.values():
        fn()  # warm-up
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _row(kappa: torch.Tensor, with_torch: bool, repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    """Seconds of (1), (2) and, if ``with_torch``, (3) for these concentrations."""
    loc = torch.zeros_like(kappa)
    one = torch.ones((), dtype=kappa.dtype, device=kappa.device)

    def von_mises() -> None:
        lc = loc.clone().requires_grad_()
        k = kappa.clone().requires_grad_()
        VonMises(lc, k).rsample().sum().backward()

    def gamma() -> None:
        k = kappa.clone().requires_grad_()
        torch.distributions.Gamma(k, one).rsample().sum().backward()

    fns: dict[str, Callable[[], object]] = {"von_mises": von_mises, "gamma": gamma}
    if with_torch:
        fns["torch"] = lambda: torch.distributions.VonMises(loc, kappa).sample()
    return _median_seconds(fns, repeats, sync)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "NOT met"


def main(argv: list[str] | None = None) -> dict[str, float] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_von_mises: no CUDA device here, skipped")
        return None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    gen = torch.Generator().manual_seed(0)
    mixed = torch.empty(args.n, dtype=dtype).uniform_(math.log(0.1), math.log(100.0), generator=gen).exp_()
    rows = {
        "mixed kappa": mixed.to(device),
        "kappa = 2": torch.full((args.n,), 2.0, dtype=dtype, device=device),
    }
    torch.manual_seed(0)
    print(
        f"n={args.n} dtype={args.dtype} device={device} threads={torch.get_num_threads()}, "
        f"median of {args.repeats}; mixed kappa ~ log-uniform[0.1, 100]"
    )
    ratios: dict[str, float] = {}
    for i, (name, kappa) in enumerate(rows.items()):
        sec = _row(kappa, with_torch=i == 0, repeats=args.repeats, sync=sync)
        ratio = sec["von_mises"] / sec["gamma"]
        ratios[f"gamma {name}"] = ratio
        print(
            f"von Mises / Gamma, {name}: {ratio:.2f} (goal <= {_GOAL_VS_GAMMA}) "
            f"{_verdict(ratio <= _GOAL_VS_GAMMA)}  [{sec['von_mises'] / args.n * 1e9:.1f} vs "
            f"{sec['gamma'] / args.n * 1e9:.1f} ns/sample]"
        )
        if "torch" in sec:
            speedup = sec["torch"] / sec["von_mises"]
            ratios[f"torch {name}"] = speedup
            print(
                f"torch VonMises.sample / von Mises, {name}: {speedup:.1f} (goal >= {_GOAL_VS_TORCH:g}) "
                f"{_verdict(speedup >= _GOAL_VS_TORCH)}"
            )
    return ratios


if __name__ == "__main__":
    main()
