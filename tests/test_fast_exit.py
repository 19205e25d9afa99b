"""The quick exit of the `vae-lab` console script (vae_lab/fast_exit.py, `vae_lab.cli.run`): nothing that an
ordinary exit would have written is lost, and the exit code is kept."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.conftest import run_cli
from vae_lab.fast_exit import FULL_EXIT_ENV, exit_now

# Every way a process's output can still be pending when its last line has run.
PROBE = textwrap.dedent(
    """
    import atexit, ctypes, logging, sys, threading, time
    from pathlib import Path
    from vae_lab.fast_exit import exit_now

    out = Path(sys.argv[1])
    left_open = open(out / "unclosed.txt", "w")          # never closed: its buffer holds the text
    left_open.write("kept\\n")
    binary = open(out / "unclosed.bin", "wb")
    binary.write(b"\\x01\\x02")
    import gc; gc.freeze()  # as vae_lab.import_gc does after the first heavy import
    frozen = open(out / "frozen.txt", "w")                # opened before another freeze
    frozen.write("frozen")
    gc.freeze()
    logging.basicConfig(filename=out / "log.txt", level=logging.INFO)
    logging.getLogger("probe").info("logged")               # closed by logging's atexit handler

    def late():
        time.sleep(0.3)
        (out / "thread.txt").write_text("thread done")

    threading.Thread(target=late).start()                   # not a daemon: waited for
    atexit.register(lambda: (out / "atexit.txt").write_text("atexit ran"))
    print("python stdout without a newline", end="")       # a pipe: block-buffered
    print("python stderr", end="", file=sys.stderr)
    ctypes.CDLL(None).printf(b"C stdout without a newline ")  # C's own buffer
    exit_now(3)
    """
)


def _probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    environment = {k: v for k, v in os.environ.items() if k != FULL_EXIT_ENV} | env
    command = [sys.executable, str(script), str(tmp_path)]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)


@pytest.mark.parametrize("full", [False, True], ids=["fast", "full"])
def test_nothing_pending_is_lost(tmp_path: Path, full: bool) -> None:
    done = _probe(tmp_path, **({FULL_EXIT_ENV: "1"} if full else {}))
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "unclosed.txt").read_text() == "kept\n"
    assert (tmp_path / "unclosed.bin").read_bytes() == b"\x01\x02"
    assert (tmp_path / "frozen.txt").read_text() == "frozen"
    assert "INFO:probe:logged" in (tmp_path / "log.txt").read_text()
    assert (tmp_path / "thread.txt").read_text() == "thread done"
    assert (tmp_path / "atexit.txt").read_text() == "atexit ran"
    assert "python stdout without a newline" in done.stdout
    assert "C stdout without a newline" in done.stdout
    assert done.stderr == "python stderr"


def test_full_exit_is_the_interpreters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FULL_EXIT_ENV, "1")
    with pytest.raises(SystemExit) as raised:
        exit_now(4)
    assert raised.value.code == 4


def test_the_console_script_exits_quickly() -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "vae-lab"]
    assert script.value == "vae_lab.cli:run"


def _files(run_dir: Path) -> dict[str, int]:
    """Every file of a run and its size; TensorBoard's event files are named by time and process."""

    def key(path: Path) -> str:
        name = str(path.relative_to(run_dir))
        return "tfevents" + path.suffix if "tfevents" in name else name

    return {key(p): p.stat().st_size for p in run_dir.rglob("*") if p.is_file()}


def test_a_run_leaves_what_the_full_exit_leaves(tmp_path: Path) -> None:
    """The same job with the quick exit and with the interpreter's: the same files, byte for byte where
    they hold no time."""
    runs = {}
    for name, env in (("fast", {}), ("full", {FULL_EXIT_ENV: "1"})):
        cwd = tmp_path / name
        cwd.mkdir()
        done = run_cli(["train", "trainer.max_epochs=2", "hydra.run.dir=run"], cwd, env=env)
        assert done.returncode == 0, done.stderr
        assert "vae-lab train: completed" in done.stdout + done.stderr
        runs[name] = cwd / "run"
    sizes = {k: _files(runs[k]) for k in runs}
    assert sizes["fast"].pop("summary.json") > 0 and sizes["full"].pop("summary.json") > 0
    assert sizes["fast"] == sizes["full"]
    texts = {k: {f: _without(runs[k], f) for f in TEXTS} for k in runs}
    assert texts["fast"] == texts["full"]
    summaries = {k: json.loads(_without(runs[k], "summary.json")) for k in runs}
    for summary in summaries.values():
        del summary["duration_s"], summary["code"]
    assert summaries["fast"] == summaries["full"]


TEXTS = ("metrics.csv", "hparams.yaml", ".hydra/config.yaml", "train.log")


def _without(run_dir: Path, name: str) -> str:
    """A text file of a run without its run directory, the log's timestamps and the probes' timings."""
    text = (run_dir / name).read_text().replace(str(run_dir.parent), "")
    text = re.sub(r"^\[[0-9 :,-]+\]", "", text, flags=re.MULTILINE)
    return re.sub(r"[0-9.]+ s\b", "_ s", text)
