"""Start-up guards (not timed): what each command imports, checked in fresh processes.

`vae-lab` commands that do not train (help, report, a config error) never import torch; `vae-lab train`
imports neither SciPy, matplotlib, pandas, scikit-learn, Ray nor submitit with the default callbacks
(torchmetrics' own SciPy and matplotlib imports are held back: :mod:`vae_lab.lean_imports`; the digits
are read without scikit-learn). The timings are benchmarks/bench_startup.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ("torch", "pytorch_lightning", "scipy", "matplotlib", "pandas", "sklearn", "ray", "submitit")

# runs vae-lab's main in this interpreter, then prints which of HEAVY it imported
PROBE = """
import json, sys
from vae_lab.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit_:
    code = exit_.code
print("IMPORTED " + json.dumps({"code": code, "modules": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def imported(args: list[str], cwd, code: str = PROBE) -> tuple[int, list[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("IMPORTED ")]
    assert lines, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("IMPORTED "))
    return result["code"], result["modules"]


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["report", "--help"],
        ["train", "--help"],
        ["train", "data=no_such_data"],
        ["eval", "--help"],
    ],
)
def test_commands_that_do_not_train_do_not_import_torch(args, tmp_path):
    code, modules = imported(args, tmp_path)
    assert code in (0, 2, None)
    assert "torch" not in modules and "pytorch_lightning" not in modules


def test_train_imports_no_plotting_tables_scipy_or_launchers(tmp_path):
    args = ["train", "+debug=fast", "test=false", f"hydra.run.dir={tmp_path / 'run'}"]
    code, modules = imported(args, tmp_path)
    assert code in (0, None)
    assert "torch" in modules and "pytorch_lightning" in modules  # the probe sees what a run imports
    assert not set(modules) & {"scipy", "matplotlib", "pandas", "sklearn", "ray", "submitit"}


LIGHTNING = """
import json, sys
import vae_lab, pytorch_lightning, torchmetrics
from lightning_utilities.core import imports
import torchmetrics.utilities.plot as plot
held_back = [m for m in ("scipy", "matplotlib") if m in sys.modules]
truthful = [bool(imports.RequirementCache("scipy")), imports.package_available("matplotlib"),
            torchmetrics.package_available("scipy"), bool(plot._MATPLOTLIB_AVAILABLE)]
figure = plot.plt.Figure.__name__  # torchmetrics' plotting imports matplotlib on first use
print("IMPORTED " + json.dumps({"code": [held_back, truthful, figure], "modules": []}))
"""


def test_torchmetrics_is_imported_without_scipy_and_matplotlib(tmp_path):
    (held_back, truthful, figure), _ = imported([], tmp_path, code=LIGHTNING)
    assert held_back == []  # imported by Lightning, without them
    assert truthful == [True, True, True, True]  # and its checks tell the truth afterwards
    assert figure == "Figure"


def test_digits_read_without_sklearn_are_sklearn_s_digits():
    from sklearn.datasets import load_digits

    from vae_lab.data.digits import load_digits_arrays

    levels, target = load_digits_arrays()
    bunch = load_digits()
    assert levels.dtype == bunch.data.dtype and np.array_equal(levels, bunch.data)
    assert target.dtype == bunch.target.dtype and np.array_equal(target, bunch.target)
    levels[:] = -1  # a copy: the next caller still gets the digits
    assert np.array_equal(load_digits_arrays()[0], bunch.data)


def test_joblib_sweep_with_warm_workers_logs_as_before(tmp_path):
    """The workers that JoblibWarmStart starts import Lightning before Hydra sets up a job's logging:
    Lightning's records still go to each job's train.log, not to the console."""
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "seed=0,1", "+debug=fast", "test=false", "hydra/launcher=joblib"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("vae-lab")),
            *args,
            "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "all 2 jobs completed" in done.stdout + done.stderr
    assert "Trainer.fit" not in done.stdout + done.stderr
    for job in ("0", "1"):
        assert "`Trainer.fit` stopped" in (sweep / job / "train.log").read_text()
