"""Heavy imports with the garbage collector paused (vae_lab/import_gc.py), each check in a fresh
interpreter: what the collector does during an import and afterwards is process-wide state."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

# A module whose import creates 200,000 container objects that stay alive, as torch's import does.
BIG_MODULE = "TABLE = [[i] for i in range(200_000)]\n"

PROBE = textwrap.dedent(
    """
    import gc, json, sys
    from vae_lab.import_gc import import_without_gc

    sys.path.insert(0, sys.argv[1])
    collections = []
    gc.callbacks.append(lambda phase, info: phase == "stop" and collections.append(info["generation"]))
    if sys.argv[2] == "disabled":
        gc.disable()
    import_without_gc("big_module")
    during = list(collections)
    frozen = gc.get_freeze_count()
    import_without_gc("big_module")  # imported already: nothing frozen again
    junk = [[j] for j in range(100_000)]  # the collector runs again (where it ran before)
    print(json.dumps({
        "during": during, "frozen": frozen, "frozen_again": gc.get_freeze_count(),
        "enabled": gc.isenabled(), "after": collections[len(during):],
    }))
    """
)


def _probe(tmp_path: Path, gc_state: str) -> dict:
    (tmp_path / "big_module.py").write_text(BIG_MODULE)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), gc_state], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_import_runs_no_collection_and_its_objects_are_frozen(tmp_path):
    seen = _probe(tmp_path, "enabled")
    assert seen["during"] == []  # with the collector on, 200,000 objects take hundreds of collections
    assert seen["frozen"] >= 200_000
    assert seen["frozen_again"] == seen["frozen"]
    assert seen["enabled"] and len(seen["after"]) > 0


def test_a_paused_collector_stays_paused(tmp_path):
    seen = _probe(tmp_path, "disabled")
    assert not seen["enabled"] and seen["after"] == []


def test_without_the_pause_the_same_import_collects(tmp_path):
    """The check above can fail: the same import with a plain `import` runs the collector."""
    (tmp_path / "big_module.py").write_text(BIG_MODULE)
    code = (
        "import gc, sys; n = []; sys.path.insert(0, sys.argv[1]);"
        "gc.callbacks.append(lambda p, i: p == 'stop' and n.append(1)); import big_module; print(len(n))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert int(done.stdout) > 100


def test_a_train_command_runs_no_full_collection_before_its_first_step(tmp_path):
    """`vae-lab train` imports torch and Lightning without the collector (6 full collections before)."""
    code = textwrap.dedent(
        f"""
        import gc, sys
        full = []
        gc.callbacks.append(lambda p, i: p == "stop" and i["generation"] == 2 and full.append(1))
        from vae_lab.cli import main
        code = main(["train", "trainer.max_steps=1", "test=false", "hydra.run.dir={tmp_path / "run"}"])
        print(code, len(full), gc.get_freeze_count(), gc.isenabled())
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    code, full, frozen, enabled = done.stdout.splitlines()[-1].split()
    assert (code, full, enabled) == ("0", "0", "True") and int(frozen) > 100_000
