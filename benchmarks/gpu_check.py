"""Run vae-lab's GPU checks (tests/test_cuda.py) and print one table row per check.

    python benchmarks/gpu_check.py [pytest arguments, e.g. -k estimator]

The checks: the von Mises sampler on the GPU against scipy (KS tests) and its gradient dz/dkappa against
the CPU float64 reference at the same draws; every estimator's gradient on the GPU against closed forms
(z-scores, 4 standard errors); one training step and the importance-weighted bound of each posterior
family on the GPU; the data moved to the GPU once and binarized there; short `vae-lab train trainer=gpu
+debug=fast` runs (Gaussian with the gradient-variance probe, von Mises implicit and RSVI, MNIST with
dynamic binarization) and `vae-lab eval` of the first, which must give its test metrics again.

Columns: check (the test), status (passed, failed, skipped), seconds (setup, call and teardown; a shared
training run counts for the first check that uses it), detail (what the check measured, the failure's
message or the reason for a skip). The offline data (``VAE_LAB_DATA_DIR``, else ../shared/data) is needed
for the MNIST run. Exit status: 1 if a check failed, else 0.

Where torch sees no CUDA device the checks are skipped: the table says so for each, and the script
exits 0 with a one-line message.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CHECKS = REPO / "tests" / "test_cuda.py"


class _Collect:
    """A pytest plugin that keeps, per test, its outcome, its time and what it recorded as ``detail``."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = self.rows.setdefault(
            report.nodeid, {"status": "passed", "seconds": 0.0, "recorded": "", "why": ""}
        )
        row["seconds"] += report.duration
        for name, value in report.user_properties:
            if name == "detail":
                row["recorded"] = str(value)
        if report.skipped:
            row["status"] = "skipped"
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            row["why"] = reason.removeprefix("Skipped: ")
        elif report.failed:
            row["status"] = "failed"
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash is not None else str(report.longrepr)
            row["why"] = " ".join(message.split())[:300]

    @staticmethod
    def detail(row: dict) -> str:
        """What the check recorded; for a failure or a skip, the message first."""
        return " | ".join(part for part in (row["why"], row["recorded"]) if part)


def _device_line() -> str:
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA build: {torch.version.cuda}): no CUDA device on this machine"
    props = torch.cuda.get_device_properties(0)
    memory = props.total_memory / 2**30
    return (
        f"torch {torch.__version__}, CUDA {torch.version.cuda}: {props.name}, compute capability "
        f"{props.major}.{props.minor}, {memory:.0f} GiB, {torch.cuda.device_count()} device(s)"
    )


def table(rows: dict[str, dict]) -> str:
    names = {nodeid: nodeid.split("::", 1)[-1] for nodeid in rows}
    width = max([len("check"), *map(len, names.values())])
    lines = [f"{'check':<{width}}  {'status':<7}  {'seconds':>7}  detail"]
    lines.append("-" * len(lines[0]))
    for nodeid, row in rows.items():
        lines.append(
            f"{names[nodeid]:<{width}}  {row['status']:<7}  {row['seconds']:7.2f}  {_Collect.detail(row)}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    print(_device_line(), flush=True)
    collect = _Collect()
    started = time.perf_counter()
    args = [str(CHECKS), "-q", "-p", "no:cacheprovider", "--tb=short", "-rN", *argv]
    code = pytest.main(args, plugins=[collect])
    elapsed = time.perf_counter() - started
    print()
    print(table(collect.rows))
    counts = {
        s: sum(r["status"] == s for r in collect.rows.values()) for s in ("passed", "failed", "skipped")
    }
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    print(f"\n{summary} in {elapsed:.1f} s")
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; every GPU check was skipped (nothing failed).")
        return 0
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or not collect.rows:
        print(f"gpu_check: pytest stopped with {pytest.ExitCode(code).name}")
        return 1
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
