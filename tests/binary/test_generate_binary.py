"""scripts/generate.py in the real Blender program (Debian's 3.4): every documented exit status under `blender -b`.

Blender 3.4 loads the add-on the legacy way and installs no wheel, so the watch falls back to polling:
the batch must still work. Each outcome is checked by its exit status, what the run printed, the .blend
it saved (opened again in the same Blender), the tasks the stand-in saw created, and the temp folder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import API_KEY, ROOT, blend_contents, blender_cmd, run_blender, temp_left

from standin_server import StandinServer

SCRIPT = ROOT / "scripts" / "generate.py"


@pytest.fixture
def gen(standin: StandinServer, sample_glb: Path) -> Iterator[StandinServer]:
    """The stand-in's generation side, fast: every created task serves the sample within about 0.3 s."""
    g = standin.gen
    g.generated_asset = str(sample_glb)
    g.timeline_step = 0.05
    g.balance = 1000.0
    g.upload_limit = (1000, 60.0)
    g._plans.clear()
    g.created.clear()
    g.orders.clear()
    yield standin
    g._plans.clear()


def generate(blender: str, env: dict[str, str], server: StandinServer, *args: str | Path):
    """`blender -b --factory-startup --python generate.py -- ARGS` to the end, pointed at the stand-in."""
    env = {**env, "TRIVERSE_API_URL": server.base_url, "TRIVERSE_API_KEY": API_KEY}
    return run_blender(blender, ["--python", SCRIPT, "--", *map(str, args)], env)


def _creations(server: StandinServer) -> list:
    return [r for r in server.requests if r.method == "POST" and "-to-" in r.path]


def test_every_prompt_generated_exits_0_and_saves_the_scene(blender, blender_env, gen, tmp_path):
    out, report = tmp_path / "scene.blend", tmp_path / "report.json"

    proc = generate(blender, blender_env, gen, "-o", out, "--report", report, "--jobs", "2",
                    "a red chair", "a blue table")  # fmt: skip

    assert proc.returncode == 0, proc.stdout + proc.stderr
    tasks = list(gen.created)
    assert len(tasks) == 2
    contents = blend_contents(blender, out, blender_env)
    assert sorted(k for k in contents if k) == sorted(tasks)
    data = json.loads(report.read_text())
    assert [t["prompt"] for t in data["tasks"]] == ["a red chair", "a blue table"]  # in the order given
    assert all(t["status"] == "imported" and t["objects"] == 2 and t["cost"] == 40 for t in data["tasks"])
    assert sorted(t["task_uuid"] for t in data["tasks"]) == sorted(tasks)
    stored = Path(blender_env["BLENDER_USER_DATAFILES"]) / "triverse" / "generations.json"
    assert sorted(r["task_uuid"] for r in json.loads(stored.read_text())["generations"]) == sorted(tasks)
    assert API_KEY not in stored.read_text()
    assert "Traceback" not in proc.stdout + proc.stderr
    assert temp_left(blender_env) == []


def test_some_failed_exits_1_and_saves_what_succeeded(blender, blender_env, gen, tmp_path):
    out = tmp_path / "scene.blend"
    gen.gen.script_next("SUCCESS")
    gen.gen.script_next("FAILED", error="The mesh could not be reconstructed")

    proc = generate(blender, blender_env, gen, "-o", out, "--jobs", "1", "a red chair", "a broken vase", "ab")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    first, second = gen.created
    assert f"{first} 'a red chair' imported: 2 objects, 40 credits" in proc.stdout
    assert f"{second} 'a broken vase' failed: Task {second[:8]} ended FAILED: The mesh could not" in proc.stdout
    assert "- 'ab' failed: Describe the model in at least 3 characters." in proc.stdout
    assert "1 imported, 2 failed" in proc.stdout
    assert sorted(k for k in blend_contents(blender, out, blender_env) if k) == [first]
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args, says",
    [
        ((), "give at least one prompt"),
        (("--polygon-limit", "10", "a chair"), "--polygon-limit must be between"),
        (("--texture-size", "999", "a chair"), "invalid choice"),
        (("--jobs", "0", "a chair"), "--jobs must be between"),
    ],
    ids=["nothing", "polygons", "texture", "jobs"],
)
def test_bad_usage_exits_2_and_sends_nothing(blender, blender_env, gen, tmp_path, args, says):
    proc = generate(blender, blender_env, gen, "-o", tmp_path / "x.blend", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr
    assert gen.requests == []
    assert not (tmp_path / "x.blend").exists()


def test_max_credits_refuses_the_batch_and_creates_nothing(blender, blender_env, gen, tmp_path):
    out = tmp_path / "scene.blend"

    proc = generate(blender, blender_env, gen, "-o", out, "--max-credits", "100", "a chair", "a table", "a lamp")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "would cost 120 credits, more than --max-credits 100" in proc.stderr
    assert "nothing was created" in proc.stderr
    assert gen.created == [] and _creations(gen) == []
    assert len([r for r in gen.requests if r.path.endswith("/tasks/pricing/quote")]) == 3  # every item priced
    assert not out.exists()


def test_max_credits_within_the_limit_generates(blender, blender_env, gen, tmp_path):
    out = tmp_path / "scene.blend"
    proc = generate(blender, blender_env, gen, "-o", out, "--max-credits", "40", "--mesh-only", "--turbo",
                    "a chair", "a table")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "quoted: 20 credits for 2 tasks" in proc.stdout  # mesh only 20, turbo -10: 10 each
    assert len(gen.created) == 2
    assert all("/tasks/text-to-mesh" in r.path for r in _creations(gen))


def test_ctrl_c_saves_what_was_imported_and_exits_1(blender, blender_env, gen, tmp_path):
    out = tmp_path / "scene.blend"
    gen.gen.script_next("SUCCESS")
    gen.gen.script_next(hold=True)  # the second task runs until released: the batch is watching it
    env = {**blender_env, "TRIVERSE_API_URL": gen.base_url, "TRIVERSE_API_KEY": API_KEY}
    proc = subprocess.Popen(
        blender_cmd(blender, "--python", SCRIPT, "--", "-o", out, "--jobs", "1", "a red chair", "a slow lamp"),
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 60
    while not (any("imported:" in line for line in lines) and len(gen.created) == 2):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)

    proc.send_signal(signal.SIGINT)

    assert proc.wait(timeout=30) == 1, "".join(lines)
    reader.join(5)
    output = "".join(lines)
    assert "interrupted: saving what was imported" in output
    first, held = gen.created
    assert sorted(k for k in blend_contents(blender, out, blender_env) if k) == [first]
    stored = Path(blender_env["BLENDER_USER_DATAFILES"]) / "triverse" / "generations.json"
    record = {r["task_uuid"]: r for r in json.loads(stored.read_text())["generations"]}[held]
    assert record["status"] in ("QUEUED", "RUNNING")  # as last seen: listed, to be watched again
    gen.gen.release(held)
