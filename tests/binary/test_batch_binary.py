"""scripts/batch_import.py in the real Blender program: every documented exit status under `blender -b`.

Blender exits 0 when an exception escapes a `--python` script, so each outcome is checked by its exit
status, what the run printed, the .blend it saved (opened again in the same Blender) and the temp
folder it leaves behind (nothing).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import API_KEY, ROOT, blend_contents, blender_cmd, run_blender, temp_left

from standin_server import StandinServer

SCRIPT = ROOT / "scripts" / "batch_import.py"


def batch_env(env: dict[str, str], server: StandinServer, key: str = API_KEY) -> dict[str, str]:
    """The Blender environment pointed at the stand-in with a key."""
    return {**env, "TRIVERSE_API_URL": server.base_url, "TRIVERSE_API_KEY": key}


def new_tasks(server: StandinServer, source: Path, n: int) -> list[str]:
    """`n` finished tasks serving `source`."""
    tasks = [str(uuid.uuid4()) for _ in range(n)]
    for task in tasks:
        server.add(task, source)
    return tasks


def batch(
    blender: str, env: dict[str, str], *args: str | Path, script: Path = SCRIPT
) -> subprocess.CompletedProcess[str]:
    """`blender -b --factory-startup --python batch_import.py -- ARGS` to the end."""
    return run_blender(blender, ["--python", script, "--", *args], env)


class Running:
    """A batch started in the background, its output collected line by line as it comes."""

    def __init__(self, blender: str, env: dict[str, str], *args: str | Path) -> None:
        self.proc = subprocess.Popen(
            blender_cmd(blender, "--python", SCRIPT, "--", *args),
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll until `condition` holds; fail naming `what` if the batch ended or time ran out first."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"never saw {what}; exit {self.proc.wait()}:\n{self.output}")
            time.sleep(0.05)

    def finish(self, timeout: float = 60.0) -> int:
        """The exit status; a batch still running after `timeout` is killed and the test fails."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the batch did not end within {timeout:.0f} s:\n{self.output}")
        self.reader.join(timeout=10)
        return code


def test_binary_all_imported_exits_0_and_saves_the_objects(blender, blender_env, standin, sample_glb, tmp_path):
    tasks = new_tasks(standin, sample_glb, 2)
    out, report = tmp_path / "out" / "scene.blend", tmp_path / "report.json"
    env = batch_env(blender_env, standin)

    proc = batch(blender, env, "-o", out, "--report", report, "--jobs", "2", *tasks)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    contents = blend_contents(blender, out, blender_env)
    assert sorted(contents) == sorted(tasks) and all(len(contents[t]) == 2 for t in tasks)
    assert [t["status"] for t in json.loads(report.read_text())["tasks"]] == ["imported", "imported"]
    assert temp_left(env) == []


def test_binary_some_failed_exits_1_imports_the_rest_and_reports(blender, blender_env, standin, sample_glb, tmp_path):
    good, expired = new_tasks(standin, sample_glb, 2)
    standin.fail("expired", expired)
    out, report = tmp_path / "scene.blend", tmp_path / "report.json"
    env = batch_env(blender_env, standin)

    proc = batch(blender, env, "-o", out, "--report", report, good, expired, "not-a-uuid")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{expired} failed: The model of task {expired[:8]} has expired" in proc.stdout
    assert "1 imported, 2 failed" in proc.stdout
    assert list(blend_contents(blender, out, blender_env)) == [good]
    data = json.loads(report.read_text())
    assert data["output"] == str(out) and not data["interrupted"]
    assert {t["task_uuid"]: t["status"] for t in data["tasks"]} == {
        "not-a-uuid": "failed",
        good: "imported",
        expired: "failed",
    }
    assert temp_left(env) == []


def test_binary_output_that_cannot_be_written_exits_1_before_any_download(
    blender, blender_env, standin, sample_glb, tmp_path
):
    task = new_tasks(standin, sample_glb, 1)[0]
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file where the output folder should be")
    env = batch_env(blender_env, standin)

    proc = batch(blender, env, "-o", not_a_folder / "scene.blend", task)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: Cannot save to {not_a_folder / 'scene.blend'}: {not_a_folder} is not a folder" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert standin.requests_for("/tasks/download/") == []  # refused before downloading anything
    assert not_a_folder.read_text() == "a file where the output folder should be"
    assert temp_left(env) == []


def stall_second_task(
    blender: str, env: dict[str, str], server: StandinServer, sample: Path, out: Path, report: Path
) -> tuple[Running, str, str]:
    """Start a batch of two tasks, one at a time; return once the first is imported and the second is held."""
    first, stalled = new_tasks(server, sample, 2)
    server.fail("stall", stalled, after_bytes=1000, seconds=120)
    run = Running(blender, env, "-o", out, "--report", report, "--jobs", "1", first, stalled)
    run.wait_until(f"{first} imported", lambda: f"{first} imported:" in run.output or f"{first} failed:" in run.output)
    if f"{first} imported:" not in run.output:
        run.proc.kill()
        pytest.fail(f"{first} was not imported:\n{run.output}")
    run.wait_until(f"the download of {stalled}", lambda: bool(server.requests_for(f"/tasks/download/{stalled}")))
    return run, first, stalled


def test_binary_ctrl_c_stops_and_saves_what_was_imported(blender, blender_env, standin, sample_glb, tmp_path):
    out, report = tmp_path / "scene.blend", tmp_path / "report.json"
    env = batch_env(blender_env, standin)
    run, first, _ = stall_second_task(blender, env, standin, sample_glb, out, report)

    run.proc.send_signal(signal.SIGINT)  # the server holds the second download: it cannot have finished
    code = run.finish()

    assert code == 1, run.output
    assert "interrupted: saving what was imported" in run.output
    assert "Traceback" not in run.output
    assert list(blend_contents(blender, out, blender_env)) == [first]
    data = json.loads(report.read_text())
    assert data["interrupted"] and [t["task_uuid"] for t in data["tasks"]] == [first]
    assert temp_left(env) == []  # no staged add-on, no partial download, no Blender session folder


def test_binary_save_failing_after_the_imports_exits_1(blender, blender_env, standin, sample_glb, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    out, report = folder / "scene.blend", tmp_path / "report.json"
    env = batch_env(blender_env, standin)
    run, _, _ = stall_second_task(blender, env, standin, sample_glb, out, report)
    # The output folder was checked at the start; now it is gone and a file stands in its place.
    folder.rmdir()
    folder.write_text("not a folder")

    run.proc.send_signal(signal.SIGINT)
    code = run.finish()

    assert code == 1, run.output
    assert f"error: Could not save {out}: Cannot open file {out}@ for writing: Not a directory" in run.output
    assert "Traceback" not in run.output
    assert folder.read_text() == "not a folder"
    assert json.loads(report.read_text())["output"] is None
    assert temp_left(env) == []


def checkout_with_a_bug(tmp_path: Path) -> Path:
    """A copy of the checkout whose add-on raises an unexpected error from `batch.import_tasks`."""
    copy = tmp_path / "checkout"
    (copy / "scripts").mkdir(parents=True)
    for name in ("batch_import.py", "build.py", "_bootstrap.py"):
        shutil.copy2(ROOT / "scripts" / name, copy / "scripts" / name)
    shutil.copytree(ROOT / "triverse_addon", copy / "triverse_addon", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "blender_manifest.toml", copy / "blender_manifest.toml")
    shutil.copytree(ROOT / "build" / "wheels", copy / "build" / "wheels")  # no download for the staging
    planted = copy / "triverse_addon" / "blender" / "importing" / "batch.py"
    assert planted.is_file(), f"{planted} does not exist: the batch module moved, plant the bug where it is now"
    with open(planted, "a") as f:
        f.write("\n\ndef import_tasks(*args, **kwargs):\n    raise ZeroDivisionError('a bug planted by the test')\n")
    return copy


def test_binary_unexpected_error_exits_1_with_the_reason_and_traceback(
    blender, blender_env, standin, sample_glb, tmp_path
):
    import build  # scripts/build.py: makes sure the wheels the staging copies are in build/wheels

    build.fetch_wheels()
    task = new_tasks(standin, sample_glb, 1)[0]
    out = tmp_path / "scene.blend"
    env = batch_env(blender_env, standin)

    proc = batch(blender, env, "-o", out, task, script=checkout_with_a_bug(tmp_path) / "scripts" / "batch_import.py")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback (most recent call last):" in proc.stderr
    assert (
        "error: the batch stopped on an unexpected error (ZeroDivisionError: a bug planted by the test)." in proc.stderr
    )
    assert not out.exists()
    assert temp_left(env) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "give at least one task UUID"),
        (("--jobs", "0", "92483a80-236c-4889-9a95-4c90bb64dfd8"), "--jobs must be between 1 and 32"),
    ],
)
def test_binary_bad_usage_exits_2(blender, blender_env, standin, args, says):
    env = batch_env(blender_env, standin)

    proc = batch(blender, env, *args)

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr
    assert standin.requests == []
    assert temp_left(env) == []
