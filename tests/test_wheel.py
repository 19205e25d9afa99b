"""The built wheel, installed into a fresh virtual environment, runs `vae-lab train`, `variance`, `report`
and `eval` from a folder outside the repository: the config tree (the top-level conf/) ships inside the
wheel as the package ``vae_lab.conf``.

No network: the wheel is built without build isolation from a copy of the sources (the files a clean
checkout has), and the fresh environment gets vae-lab from that wheel alone (``pip install --no-deps``);
its dependencies (torch, Lightning, Hydra, ...) are this test environment's, reached through a ``.pth``
file that adds only their site-packages folder, which does not run the ``.pth`` files there (so the
editable install of the checkout stays out of sight).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: what the wheel is built from: the packaging files, the package and the config tree
SOURCES = ["pyproject.toml", "setup.py", "README.md", "vae_lab", "conf"]


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A new virtual environment with the wheel installed; returns its bin folder and the environment
    variables to run it with."""
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    py = sys.executable
    run(
        [py, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), "."],
        src,
        env,
    )
    (wheel,) = (root / "dist").glob("vae_lab-*.whl")

    venv = root / "venv"
    run([py, "-m", "venv", "--without-pip", str(venv)], root, env)
    venv_py = venv / "bin" / "python"
    purelib = Path(
        run(
            [str(venv_py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root, env
        ).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "test_dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    # --ignore-installed: never touch the vae-lab this environment reaches through the .pth file
    pip_install = ["-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed"]
    run([str(venv_py), *pip_install, str(wheel)], root, env)
    return venv / "bin", env


def test_the_wheel_holds_the_whole_config_tree(fresh_env):
    bin_dir, env = fresh_env
    work = bin_dir.parent.parent / "elsewhere"
    work.mkdir(exist_ok=True)
    code = "import vae_lab, vae_lab.config as c; print(vae_lab.__file__); print(c.CONF_DIR)"
    package, conf = run([str(bin_dir / "python"), "-c", code], work, env).stdout.split()
    assert Path(package).is_relative_to(bin_dir.parent) and not Path(package).is_relative_to(REPO_ROOT)
    assert Path(conf) == Path(package).parent / "conf"
    # the fused kernels' C++ source, compiled on first use
    assert (Path(package).parent / "distributions" / "kernels" / "von_mises_grad.cpp").is_file()
    shipped = sorted(p.relative_to(conf).as_posix() for p in Path(conf).rglob("*.yaml"))
    assert shipped == sorted(
        p.relative_to(REPO_ROOT / "conf").as_posix() for p in (REPO_ROOT / "conf").rglob("*.yaml")
    )


def test_the_installed_commands_run_from_any_folder(fresh_env, tmp_path):
    bin_dir, env = fresh_env
    vae_lab = str(bin_dir / "vae-lab")
    assert Path(vae_lab).read_text().startswith(f"#!{bin_dir / 'python'}")  # the fresh environment's script

    sweep = tmp_path / "sweep"
    run(
        [
            vae_lab,
            "train",
            "-m",
            "seed=0,1",
            "+debug=fast",
            "callbacks.progress_bar.refresh_rate=0",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
        env,
    )
    jobs = sorted(sweep.glob("*/summary.json"))
    assert [json.loads(p.read_text())["status"] for p in jobs] == ["completed", "completed"]

    report = run([vae_lab, "report", str(sweep), "--no-plots"], tmp_path, env)
    assert (sweep / "summary.csv").is_file(), report.stdout

    run(
        [
            vae_lab,
            "variance",
            "families=[vonmises]",
            "estimators=[implicit]",
            "vonmises.concentrations=[1.0]",
            "n_samples=50",
            "gaussian.enabled=false",
            "plot=false",
        ],
        tmp_path,
        env,
    )
    assert list(tmp_path.glob("outputs/variance/*/*/variance.csv"))

    checkpoint = jobs[0].parent / "checkpoints" / "best.ckpt"
    evaluated = run([vae_lab, "eval", f"ckpt={checkpoint}"], tmp_path, env)
    assert "test/nll" in evaluated.stdout
    result = json.loads(next(tmp_path.glob("outputs/eval/*/*/eval.json")).read_text())
    summary = json.loads(jobs[0].read_text())
    assert result["metrics"]["test/elbo"] == pytest.approx(summary["metrics"]["test/elbo"], abs=1e-6)
