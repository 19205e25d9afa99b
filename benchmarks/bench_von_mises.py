"""Speed of vae_lab's von Mises ``rsample`` + backward, against torch's Gamma and VonMises samplers.

    python benchmarks/bench_von_mises.py [--n 1000000] [--repeats 5] [--dtype float32] [--threads N]

Nanoseconds per sample for ``n`` samples, one per concentration, the concentrations drawn once
log-uniformly in [0.1, 100] (a fixed seed), all measured in this process, interleaved, best of ``repeats``:

1. vae_lab ``VonMises.rsample`` + ``backward`` of the sum (implicit gradient w.r.t. loc and concentration);
2. ``torch.distributions.Gamma.rsample`` + ``backward`` (shape = the same concentrations, rate 1);
3. ``torch.distributions.VonMises.sample`` (no gradient; torch's own sampler, in float64 internally).

Goals: (1) no slower than (2), and at least 5x faster than (3). Threads: torch's default for the
machine unless ``--threads`` is given. On a machine shared with other jobs, use ``--threads 1`` for
stable figures: with more threads than idle cores every parallel kernel waits for a descheduled thread.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch

from vae_lab.distributions.von_mises import VonMises


def _best_ns_per_sample(fns: dict[str, Callable[[], object]], n: int, repeats: int) -> dict[str, float]:
    """Best wall time of each function over ``repeats`` rounds, the functions interleaved within a round
    (so that a slow patch of a shared machine hits all of them alike), in nanoseconds per sample."""
    for fn in fns.values():
        fn()  # warm-up
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: t / n * 1e9 for name, t in best.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    gen = torch.Generator().manual_seed(0)
    kappa = torch.empty(args.n, dtype=dtype).uniform_(math.log(0.1), math.log(100.0), generator=gen).exp_()
    loc = torch.zeros(args.n, dtype=dtype)
    torch.manual_seed(0)

    def vae_lab_rsample_backward() -> None:
        lc = loc.clone().requires_grad_()
        k = kappa.clone().requires_grad_()
        VonMises(lc, k).rsample().sum().backward()

    def gamma_rsample_backward() -> None:
        k = kappa.clone().requires_grad_()
        torch.distributions.Gamma(k, torch.ones((), dtype=dtype)).rsample().sum().backward()

    def torch_von_mises_sample() -> None:
        torch.distributions.VonMises(loc, kappa).sample()

    results = _best_ns_per_sample(
        {
            "vae_lab VonMises rsample+backward": vae_lab_rsample_backward,
            "torch Gamma rsample+backward": gamma_rsample_backward,
            "torch VonMises sample": torch_von_mises_sample,
        },
        args.n,
        args.repeats,
    )
    ours = results["vae_lab VonMises rsample+backward"]
    print(
        f"n={args.n} dtype={args.dtype} threads={torch.get_num_threads()} "
        f"kappa ~ log-uniform[0.1, 100], best of {args.repeats}"
    )
    print(f"{'':38s} {'ns/sample':>10s} {'ratio to (1)':>13s}")
    for i, (name, ns) in enumerate(results.items(), 1):
        print(f"({i}) {name:34s} {ns:10.1f} {ns / ours:13.2f}")
    gamma = results["torch Gamma rsample+backward"]
    torch_vm = results["torch VonMises sample"]
    print(f"goal (1) <= (2): {'met' if ours <= gamma else 'NOT met'} ({ours / gamma:.2f}x of Gamma)")
    print(
        f"goal (1) >= 5x faster than (3): {'met' if torch_vm >= 5 * ours else 'NOT met'} "
        f"({torch_vm / ours:.1f}x faster)"
    )
    return results


if __name__ == "__main__":
    main()
