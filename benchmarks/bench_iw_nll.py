r"""Time and memory of the importance-weighted test NLL of ``experiment=figurnov2018/vae_mnist``.

    log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,   z_k ~ q(z|x)

computed as the test phase and `vae-lab eval` do (:func:`vae_lab.model.iw.iw_log_likelihood`: K samples
drawn ``--chunk`` at a time for ``--batch`` images at once) with the preset's model (MLP 784-200-200-D,
Bernoulli pixels) on the MNIST test images (the preset's fixed binarization):

    python benchmarks/bench_iw_nll.py [--posterior gaussian,vonmises,gamma,beta] [--latent-dim 10]
        [--images 500] [--k 5000] [--batch 100] [--chunk 50] [--threads N] [--repeats 3]
        [--reference] [--memory] [--full] [--ckpt PATH]

For each posterior it prints the seconds per image (the best of ``--repeats`` passes over ``--images``
test images, and the process CPU time per image), the projected time for all 10,000 test images and its
ratio to the goal of 10 minutes (a ratio <= 1 meets it). ``--full`` times one pass over all 10,000
instead of projecting. ``--reference`` also times the unfused likelihood (the decoder's logits through
``binary_cross_entropy_with_logits``, as before the fused form). ``--memory`` reports, for one batch at
the given chunk and for several K, the largest tensor and the most bytes held at once
(:class:`vae_lab.model.iw.TensorPeak`) and how far the resident memory of a fresh process rises during
the batch.

The weights are the preset's random initialization unless ``--ckpt`` gives a trained checkpoint of the
same posterior and latent dimension: the decoder's cost does not depend on them, the rejection samplers'
(von Mises, Gamma, Beta) a little. Timings on shared cores are noisy: compare ratios from one session,
and read the CPU time (which another process's load inflates less) beside the wall time.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
import time
import warnings

import torch

from vae_lab.data.download import DataError
from vae_lab.errors import one_line

GOAL_S = 600.0  # the whole test set at K = 5000 in at most 10 minutes
TEST_IMAGES = 10_000


def build_model(posterior: str, latent_dim: int, ckpt: str | None):
    """The preset's VAE and the MNIST test images (float32, binarized once, as the test phase sees them)."""
    from hydra import compose, initialize_config_dir

    from vae_lab.build import build
    from vae_lab.config import CONF_DIR

    preset = ["experiment=figurnov2018/vae_mnist", f"posterior={posterior}", f"model.latent_dim={latent_dim}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=preset)
    torch.manual_seed(0)
    datamodule, model = build(cfg)
    if ckpt:
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    datamodule.setup("test")
    return model.eval(), datamodule.test_data


def score(model, x: torch.Tensor, k: int, batch: int, chunk: int, fused: bool = True) -> torch.Tensor:
    from vae_lab.model.iw import iw_log_likelihood

    return torch.cat(
        [iw_log_likelihood(model, x[s : s + batch], k, chunk, fused=fused) for s in range(0, len(x), batch)]
    )


def time_pass(model, x: torch.Tensor, args: argparse.Namespace, fused: bool) -> tuple[float, float, float]:
    """(wall s, CPU s, mean NLL) of one pass over ``x``."""
    torch.manual_seed(1)
    wall, cpu = time.perf_counter(), time.process_time()
    nll = -score(model, x, args.k, args.batch, args.chunk, fused).mean().item()
    return time.perf_counter() - wall, time.process_time() - cpu, nll


def report_time(posterior: str, args: argparse.Namespace) -> None:
    model, test = build_model(posterior, args.latent_dim, args.ckpt)
    x = test if args.full else test[: args.images]
    score(model, x[: min(len(x), args.batch)], 50, args.batch, args.chunk)  # warm-up
    variants = [("fused", True)] + ([("reference", False)] if args.reference else [])
    passes: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in variants}
    for _ in range(1 if args.full else args.repeats):  # interleaved: both see the same load
        for name, fused in variants:
            passes[name].append(time_pass(model, x, args, fused))
    for name, _ in variants:
        (wall, _, nll), cpu = min(passes[name]), min(p[1] for p in passes[name])  # each the best pass
        walls = ", ".join(f"{p[0]:.1f}" for p in passes[name])
        per_image = wall / len(x)
        full = wall if args.full else per_image * TEST_IMAGES
        what = "measured" if args.full else "projected"
        print(
            f"{posterior:9s} d={args.latent_dim} {name:9s} K={args.k} batch={args.batch} chunk={args.chunk} "
            f"threads={torch.get_num_threads()}: {per_image * 1e3:7.2f} ms/image "
            f"(CPU {cpu / len(x) * 1e3:.2f}), "
            f"10,000 images {what} {full:6.0f} s, ratio to the 10-min goal {full / GOAL_S:.2f} "
            f"(nll {nll:.2f} over {len(x)} images; passes {walls} s)",
            flush=True,
        )


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: the largest tensor and the bytes held at once (TensorPeak) of one batch, and
    how far its resident memory rises above where it was before (polled every millisecond)."""
    from vae_lab.model.iw import TensorPeak

    model, test = build_model(args.posterior, args.latent_dim, args.ckpt)
    x = test[: args.batch]
    score(model, x[:2], 2, 2, 1)  # the libraries' one-time set-up (threads, buffers), at no size
    before, highest, done = _rss_bytes(), [0], threading.Event()

    def poll() -> None:
        while not done.is_set():
            highest[0] = max(highest[0], _rss_bytes())
            time.sleep(0.001)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    score(model, x, args.k, args.batch, args.chunk)
    done.set()
    poller.join()
    with TensorPeak() as peak:
        score(model, x, args.k, args.batch, args.chunk)
    print(f"{peak.largest} {peak.peak} {max(0, highest[0] - before)}")


def report_memory(posterior: str, args: argparse.Namespace) -> None:
    for k in sorted({args.k // 10, args.k // 2, args.k}):
        command = [sys.executable, __file__, "--memory-child", "--posterior", posterior]
        command += ["--latent-dim", str(args.latent_dim), "--k", str(k), "--batch", str(args.batch)]
        command += ["--chunk", str(args.chunk), "--threads", str(args.threads)]
        command += ["--ckpt", args.ckpt] if args.ckpt else []
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        largest, held, grown = (int(v) / 2**20 for v in out[-3:])
        rows = args.batch * args.chunk
        print(
            f"{posterior:9s} d={args.latent_dim} memory K={k} batch={args.batch} chunk={args.chunk} "
            f"({rows} rows, one (chunk, batch, 784) float32 tensor = {rows * 784 * 4 / 2**20:.1f} MiB): "
            f"largest tensor {largest:.1f} MiB, held at once {held:.1f} MiB, "
            f"resident memory rise {grown:.1f} MiB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posterior", default="gaussian,vonmises,gamma,beta")
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("VAE_LAB_DATA_DIR", os.path.expanduser("~/.cache/vae-lab"))
    torch.set_num_threads(args.threads)
    torch.distributions.Distribution.set_default_validate_args(False)
    if args.memory_child:
        memory_child(args)
        return
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    for posterior in args.posterior.split(","):
        try:
            if args.memory:
                report_memory(posterior, args)
            else:
                report_time(posterior, args)
        except DataError as err:  # no copy of MNIST here, and no network
            print(f"bench_iw_nll: skipped, no MNIST data: {one_line(err)}")
            return


if __name__ == "__main__":
    main()
