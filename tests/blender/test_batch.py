"""The batch door: scripts/batch_import.py as a user runs it (a separate Python with bpy), and its Python API."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import bpy
import pytest
from conftest import MODULE

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "batch_import.py"


def _run(server, tmp_path, *args, key="test-key", timeout=120):
    env = {
        **os.environ,
        "TRIVERSE_API_URL": server.base_url,
        "TRIVERSE_API_KEY": key,
        "BLENDER_USER_RESOURCES": str(tmp_path / "user"),  # the batch's own preferences and library
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _tasks(server, source, n):
    out = []
    for _ in range(n):
        task = str(uuid.uuid4())
        server.add(task, source)
        out.append(task)
    return out


def _open(path: Path):
    bpy.ops.wm.open_mainfile(filepath=str(path))
    tags = {}
    for ob in bpy.data.objects:
        tags.setdefault(ob.get("triverse_task_uuid"), []).append(ob.name)
    return tags


def test_all_imported_exits_0_and_saves_one_scene(standin, sample_glb, tmp_path):
    tasks = _tasks(standin, sample_glb, 3)
    out = tmp_path / "scene.blend"
    report = tmp_path / "report.json"

    proc = _run(standin, tmp_path, "--output", str(out), "--report", str(report), "--jobs", "3", *tasks)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 3 and all(" imported: 2 objects, GLB" in line for line in lines)
    assert [line.split()[1] for line in lines] == tasks  # in the order given
    tags = _open(out)
    assert sorted(k for k in tags if k) == sorted(tasks)
    assert all(len(tags[t]) == 2 for t in tasks)
    assert sorted(c.name for c in bpy.data.collections) == sorted(f"Triverse {t[:8]}" for t in tasks)
    data = json.loads(report.read_text())
    assert [t["task_uuid"] for t in data["tasks"]] == tasks
    assert all(t["status"] == "imported" and t["format"] == "glb" and t["objects"] == 2 for t in data["tasks"])
    assert all(t["bytes"] == sample_glb.stat().st_size for t in data["tasks"])


def test_failures_are_reported_the_rest_imported_exit_1(standin, sample_glb, tmp_path):
    good = _tasks(standin, sample_glb, 2)
    expired = _tasks(standin, sample_glb, 1)[0]
    standin.fail("expired", expired)
    list_file = tmp_path / "uuids.txt"
    list_file.write_text(f"# tasks\n{good[1]}\n\n{expired}  # this one expired\n")
    out = tmp_path / "scene.blend"

    proc = _run(standin, tmp_path, "-o", str(out), "--from-file", str(list_file), good[0], "not-a-uuid")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'not-a-uuid failed: "not-a-uuid" is not a Triverse task UUID' in proc.stdout
    assert f"{expired} failed: The model of task {expired[:8]} has expired" in proc.stdout
    assert "2 imported, 2 failed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    tags = _open(out)
    assert sorted(k for k in tags if k) == sorted(good)


def test_bad_usage_exits_2(standin, tmp_path):
    assert _run(standin, tmp_path).returncode == 2
    assert _run(standin, tmp_path, "--jobs", "0", str(uuid.uuid4())).returncode == 2
    proc = _run(standin, tmp_path, "--from-file", str(tmp_path / "missing.txt"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_no_key_fails_every_task_with_the_reason(standin, sample_glb, tmp_path):
    task = _tasks(standin, sample_glb, 1)[0]
    proc = _run(standin, tmp_path, "-o", str(tmp_path / "x.blend"), task, key="")
    assert proc.returncode == 1
    assert "No Triverse API key is set" in proc.stdout
    assert not (tmp_path / "x.blend").exists()
    assert standin.requests == []


def test_ctrl_c_keeps_and_saves_what_was_imported(standin, sample_glb, tmp_path):
    first = _tasks(standin, sample_glb, 1)[0]
    stalled = _tasks(standin, sample_glb, 1)[0]
    standin.fail("stall", stalled, after_bytes=1000, seconds=120)
    out = tmp_path / "scene.blend"
    env = {**os.environ, "TRIVERSE_API_URL": standin.base_url, "TRIVERSE_API_KEY": "test-key",
           "BLENDER_USER_RESOURCES": str(tmp_path / "user")}  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "-o", str(out), "--jobs", "1", first, stalled],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    # Signal only once the first task is imported and the server holds the second one's download
    # (it has seen the request and sends no more than 1000 bytes): the interrupt must find it running.
    deadline = time.monotonic() + 60
    while not (
        any(f"{first} imported:" in line for line in lines) and standin.requests_for(f"/tasks/download/{stalled}")
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the batch ended or never reached the stalled download:\n" + "".join(lines))
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
    reader.join(timeout=10)
    output = "".join(lines)

    assert proc.returncode == 1, output
    assert "interrupted: saving what was imported" in output
    assert f"{stalled} imported" not in output
    tags = _open(out)
    assert [k for k in tags if k] == [first]
    library = tmp_path / "user" / "extensions" / ".user" / "triverse_checkout" / "triverse" / "library"
    assert not list((library / ".incoming").glob("*.part")), "partial file left after Ctrl-C"


def test_python_api_inside_blender(standin, sample_glb):
    batch = __import__(f"{MODULE}.blender.importing.batch", fromlist=["import_tasks"])
    tasks = _tasks(standin, sample_glb, 2)
    seen = []

    results = batch.import_tasks([*tasks, "junk"], jobs=2, on_result=seen.append)

    assert [r.status for r in results] == ["failed", "imported", "imported"]  # bad UUIDs are told first
    assert seen == results
    assert sorted(ob.get("triverse_task_uuid") for ob in bpy.data.objects) == sorted(tasks * 2)


@pytest.mark.parametrize("jobs", [1, 4])
def test_parallel_downloads_overlap_and_import_in_order(standin, sample_glb, jobs):
    batch = __import__(f"{MODULE}.blender.importing.batch", fromlist=["import_tasks"])
    tasks = _tasks(standin, sample_glb, 4)
    standin.fail("first_byte_delay", None, seconds=0.3)

    results = batch.import_tasks(tasks, jobs=jobs)

    assert [r.task_uuid for r in results] == tasks
    assert all(r.status == "imported" for r in results)
    arrivals = sorted(r.time for r in standin.requests_for("/tasks/download/"))
    overlapping = sum(1 for a, b in itertools.pairwise(arrivals) if b - a < 0.15)
    if jobs == 1:
        assert overlapping == 0  # one after the other: each waits 0.3 s for its first byte
    else:
        assert overlapping >= 2  # several requests in flight at once
