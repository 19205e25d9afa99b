"""Start-up of `vae-lab train` and the speed-up of joblib sweeps over sequential ones.

    python benchmarks/bench_startup.py [--repeats 5] [--sweep-repeats 2] [--long-repeats 1] [--only ...]

Measures, each in fresh `vae-lab` processes:

- start-up: wall time from starting `vae-lab train` to its first training step (the default digits run;
  a callback from benchmarks/_first_step.py writes the time of the first step), median of --repeats;
- sweep speed-up: `vae-lab train -m seed=0,1,2,3` (4 default digits jobs) with Hydra's basic launcher
  (one job after the other) against `hydra/launcher=joblib hydra.launcher.n_jobs=2`, measured alternately;
  speed-up = median sequential wall / median parallel wall;
- the same with `trainer.max_epochs=100` (about 7 s of training per job).

After each speed-up, where the walls went (medians), read from the jobs' summary.json (a job ends when its
summary is last written and started ``duration_s`` before): the time to the first job's start, the jobs'
span (first start to last end) and what follows the last job; and the ceiling of the speed-up on this
machine: the sequential wall over the wall it would take with the jobs' span halved (the 4 jobs two at a
time at the sequential pace) and the rest as it is (start-up, the tail). The joblib run passes it only by
starting its first job earlier than the sequential run; what it loses against it lies in a later first
job (the workers' start) or a longer span (two jobs at once run slower on 2 cores than one alone).

Each figure is printed against its goal, with the load average (timings on a busy machine are slow and
noisy: compare ratios, and runs made at the same load). --src DIR measures another checkout of vae-lab
(e.g. an unpacked `git archive` of an older commit), with the same venv.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOALS = {"startup": 3.0, "sweep": 1.5, "long": 1.85}  # seconds (at most); speed-ups (at least)
SEEDS = "seed=0,1,2,3"


def vae_lab_command() -> list[str]:
    script = Path(sys.executable).with_name("vae-lab")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "vae_lab.cli"]


def environment(src: str | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    paths = [str(HERE)] + ([src] if src else []) + [env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def run(args: list[str], cwd: str, env: dict[str, str]) -> float:
    """Wall seconds of one `vae-lab` command; exits with its output if it fails."""
    start = time.time()
    done = subprocess.run([*vae_lab_command(), *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode != 0:
        sys.exit(
            f"failed ({done.returncode}): vae-lab {' '.join(args)}\n"
            f"{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
    return wall


def startup(repeats: int, src: str | None, work: str) -> tuple[float, float]:
    """Median seconds from process start to the first training step of `vae-lab train`, and the median
    CPU seconds the process used by then (less sensitive to other load than the wall time)."""
    times, cpus = [], []
    for i in range(repeats):
        stamp = Path(work) / f"first_step_{i}"
        env = environment(src, VAE_LAB_FIRST_STEP_FILE=str(stamp))
        args = [
            "train",
            "+callbacks.first_step._target_=_first_step.FirstStep",
            "trainer.max_steps=1",
            "test=false",
        ]
        start = time.time()
        run([*args, f"hydra.run.dir={work}/startup_{i}"], work, env)
        wall, cpu = map(float, stamp.read_text().split())
        times.append(wall - start)
        cpus.append(cpu)
    return statistics.median(times), statistics.median(cpus)


@dataclass(frozen=True)
class SweepParts:
    """Where a sweep's wall time went (seconds): to the first job's start, the jobs' span (first start to
    last end), after the last job's end; and the median duration of a job."""

    wall: float
    first: float
    span: float
    tail: float
    job: float

    def line(self, what: str) -> str:
        return (
            f"  {what}: first job after {self.first:.1f} s, jobs {self.span:.1f} s ({self.job:.1f} s each), "
            f"{self.tail:.1f} s after the last"
        )


def sweep_parts(sweep_dir: Path, start: float, end: float) -> SweepParts:
    """The :class:`SweepParts` of a sweep run from ``start`` to ``end`` (``time.time()``), from its jobs'
    summary.json: a job ends when that file was last written, and started its ``duration_s`` before."""
    spans = []
    for summary in sorted(Path(sweep_dir).glob("*/summary.json")):
        done = summary.stat().st_mtime
        spans.append((done - float(json.loads(summary.read_text())["duration_s"]), done))
    if not spans:
        sys.exit(f"no job's summary.json in {sweep_dir}")
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    job = statistics.median(e - s for s, e in spans)
    return SweepParts(end - start, first - start, last - first, end - last, job)


def median_parts(parts: list[SweepParts]) -> SweepParts:
    fields = ("wall", "first", "span", "tail", "job")
    return SweepParts(*(statistics.median(getattr(p, f) for p in parts) for f in fields))


def ceiling(seq: SweepParts, n_jobs: int = 2) -> float:
    """The speed-up over ``seq`` with the jobs' span divided among ``n_jobs`` and the rest unchanged."""
    return seq.wall / (seq.first + seq.span / n_jobs + seq.tail)


def speedup(
    repeats: int, extra: list[str], src: str | None, work: str, name: str
) -> tuple[SweepParts, SweepParts]:
    """The median :class:`SweepParts` of the sequential and the joblib run of the 4-job sweep, measured
    alternately."""
    env = environment(src)
    parts: dict[str, list[SweepParts]] = {"seq": [], "par": []}
    launchers = {"seq": [], "par": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}
    for i in range(repeats):
        for kind in ("seq", "par") if i % 2 == 0 else ("par", "seq"):
            sweep_dir = f"{work}/{name}_{kind}_{i}"
            start = time.time()
            wall = run(
                ["train", "-m", SEEDS, *extra, *launchers[kind], f"hydra.sweep.dir={sweep_dir}"], work, env
            )
            parts[kind].append(sweep_parts(Path(sweep_dir), start, start + wall))
    return median_parts(parts["seq"]), median_parts(parts["par"])


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="start-up runs (median)")
    parser.add_argument("--sweep-repeats", type=int, default=2, help="pairs of default sweeps")
    parser.add_argument("--long-repeats", type=int, default=1, help="pairs of max_epochs=100 sweeps")
    parser.add_argument("--only", choices=("startup", "sweep", "long"), action="append")
    parser.add_argument("--src", help="a vae-lab source tree to measure instead of the installed one")
    args = parser.parse_args()
    only = set(args.only or GOALS)
    print(f"{os.cpu_count()} CPUs, {load()} (before)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as work:
        if "startup" in only:
            t, cpu = startup(args.repeats, args.src, work)
            verdict = "ok" if t <= GOALS["startup"] else "over"
            print(
                f"start-up to first step: {t:.2f} s (goal <= {GOALS['startup']:g} s) {verdict}; "
                f"CPU time by then {cpu:.2f} s",
                flush=True,
            )
        for name, extra, repeats in (
            ("sweep", [], args.sweep_repeats),
            ("long", ["trainer.max_epochs=100"], args.long_repeats),
        ):
            if name not in only:
                continue
            seq, par = speedup(repeats, extra, args.src, work, name)
            ratio = seq.wall / par.wall
            verdict = "ok" if ratio >= GOALS[name] else "under"
            what = "4 digits jobs" + (", max_epochs=100" if extra else "")
            print(
                f"joblib speed-up, {what}: {ratio:.2f} (sequential {seq.wall:.1f} s / joblib n_jobs=2 "
                f"{par.wall:.1f} s; goal >= {GOALS[name]:g}) {verdict}",
                flush=True,
            )
            print(seq.line("sequential"))
            print(par.line("joblib n_jobs=2"))
            print(
                f"  ceiling here (the sequential jobs two at a time, the rest unchanged): {ceiling(seq):.2f}",
                flush=True,
            )
    print(f"{load()} (after)")


if __name__ == "__main__":
    main()
