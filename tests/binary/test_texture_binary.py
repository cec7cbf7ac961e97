"""scripts/texture.py in the real Blender program (Debian's 3.4): a .blend textured or remeshed under `blender -b`.

The .blend is made by the same Blender: `Chair` in collection `Props`, `Cup` in `Props`' child collection `Small`,
`Table` at the scene's root with a parented child `Leg`, and `Lamp`, an empty. Each outcome is checked by its
exit status, what the run printed, the .blend it saved (opened again by a small driver in the same Blender:
where each result is, what is hidden), the JSON report, what the stand-in saw created and the temp folder.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import API_KEY, ROOT, blender_cmd, run_blender, temp_left
from standin_generation import preview_png

from standin_server import StandinServer

SCRIPT = ROOT / "scripts" / "texture.py"
MESHES = ["Chair", "Cup", "Leg", "Table"]

MAKE_SCENE = """
import bpy, json, sys
from mathutils import Euler
bpy.ops.wm.read_homefile(use_empty=True)

def box(name, collection, size=1.0):
    s = size / 2
    verts = [(x, y, z) for x in (-s, s) for y in (-s, s) for z in (-s, s)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    ob = bpy.data.objects.new(name, mesh)
    collection.objects.link(ob)
    return ob

root = bpy.context.scene.collection
props = bpy.data.collections.new("Props")
root.children.link(props)
small = bpy.data.collections.new("Small")
props.children.link(small)
chair = box("Chair", props)
chair.location, chair.rotation_euler = (2.0, 0.5, 0.0), Euler((0.0, 0.0, 0.7))
cup = box("Cup", small, 0.3)
cup.location = (2.0, 0.5, 1.2)
table = box("Table", root, 1.5)
table.location, table.rotation_euler, table.scale = (-1.0, 3.0, 0.5), Euler((0.2, 0.0, 1.1)), (2.0, 1.0, 1.0)
leg = box("Leg", root, 0.2)
leg.parent = table
leg.location, leg.rotation_euler = (0.4, -0.3, -0.6), Euler((0.0, 0.3, 0.0))
lamp = bpy.data.objects.new("Lamp", None)
root.objects.link(lamp)
bpy.context.view_layer.update()
worlds = {ob.name: [list(row) for row in ob.matrix_world] for ob in bpy.data.objects}
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index("--") + 1])
print("WORLDS=" + json.dumps(worlds), flush=True)
"""

INSPECT = """
import bpy, json
def far(a, b):
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
out = {}
for ob in bpy.data.objects:
    source = ob.get("triverse_source")
    if isinstance(source, bpy.types.Object):
        out[source.name] = {
            "result": ob.name,
            "flow": ob.get("triverse_flow"),
            "offset": far(ob.matrix_world, source.matrix_world),
            "parent": (ob.parent.name if ob.parent else None) == (source.parent.name if source.parent else None),
            "collections": {c.name for c in ob.users_collection} == {c.name for c in source.users_collection},
            "original_hidden": source.hide_get() and source.hide_render,
            "result_shown": not ob.hide_get() and not ob.hide_render,
        }
worlds = {ob.name: [list(row) for row in ob.matrix_world] for ob in bpy.data.objects}
print("PLACED=" + json.dumps({"placed": out, "worlds": worlds}), flush=True)
"""


@pytest.fixture(scope="session")
def scene_blend(blender: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The scene above, saved once by the Blender under test; (its path, each object's world matrix)."""
    folder = tmp_path_factory.mktemp("scene")
    path = folder / "scene.blend"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "TMPDIR": str(folder)}
    proc = run_blender(blender, ["--python-expr", MAKE_SCENE, "--", path], env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("WORLDS=")]
    assert proc.returncode == 0 and lines and path.is_file(), proc.stdout + proc.stderr
    return path, json.loads(lines[0].removeprefix("WORLDS="))


@pytest.fixture
def scene(scene_blend: tuple[Path, dict], tmp_path: Path) -> Path:
    """A copy of the scene for one test (the default output saves over the opened file)."""
    path = tmp_path / "scene.blend"
    shutil.copy2(scene_blend[0], path)
    return path


@pytest.fixture
def gen(standin: StandinServer, sample_glb: Path) -> Iterator[StandinServer]:
    """The stand-in's scene tools, fast: every created task serves the uploaded model back within about 0.3 s."""
    g = standin.gen
    g.generated_asset = str(sample_glb)
    g.timeline_step = 0.05
    g.balance = 1000.0
    g.upload_limit = (1000, 60.0)
    g._uploads.clear()
    g._plans.clear()
    g.created.clear()
    g.orders.clear()
    g.uploaded_models.clear()
    yield standin
    g._plans.clear()


def texture(blender: str, env: dict[str, str], server: StandinServer, blend: Path, *args: str | Path):
    """`blender -b BLEND --factory-startup --python texture.py -- ARGS` to the end, pointed at the stand-in."""
    env = {**env, "TRIVERSE_API_URL": server.base_url, "TRIVERSE_API_KEY": API_KEY}
    return run_blender(blender, [blend, "--python", SCRIPT, "--", *map(str, args)], env)


def inspect(blender: str, path: Path, env: dict[str, str]) -> dict:
    """Open a saved .blend: for each original with a result, where that result is and what is shown."""
    proc = run_blender(blender, [path, "--python-expr", INSPECT], env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PLACED=")]
    assert proc.returncode == 0 and lines, f"could not open {path}:\n{proc.stdout}{proc.stderr}"
    return json.loads(lines[0].removeprefix("PLACED="))


def assert_in_place(found: dict, names: list[str], worlds: dict, flow: str = "text-to-texture") -> None:
    """Each named original has a result at its world matrix, under its parent, in its collections; it is hidden."""
    assert sorted(found["placed"]) == sorted(names), found["placed"]
    for name in names:
        placed = found["placed"][name]
        assert placed["offset"] < 1e-4, f"{name}'s result is not where {name} is: {placed}"
        assert placed["parent"] and placed["collections"] and placed["flow"] == flow, placed
        assert placed["original_hidden"] and placed["result_shown"], placed
        original = found["worlds"][name]
        moved = max(
            abs(x - y) for ra, rb in zip(original, worlds[name], strict=True) for x, y in zip(ra, rb, strict=True)
        )
        assert moved < 1e-5, f"{name} itself moved"


def _creations(server: StandinServer) -> list:
    return [r for r in server.requests if r.method == "POST" and r.path.rsplit("/", 1)[-1] in
            ("text-to-texture", "texture-model", "model-remesh")]  # fmt: skip


def test_every_mesh_textured_exits_0_and_saves_over_the_opened_file(blender, blender_env, gen, scene,
                                                                     scene_blend, tmp_path):  # fmt: skip
    report = tmp_path / "report.json"
    before = scene.read_bytes()

    proc = texture(blender, blender_env, gen, scene, "--prompt", "weathered oak", "--report", report, "--jobs", "2")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert len(gen.gen.created) == 4 and len(_creations(gen)) == 4  # one task per mesh, the empty left alone
    assert scene.read_bytes() != before  # no -o: saved over the opened file, as generate.py's rule says
    assert_in_place(inspect(blender, scene, blender_env), MESHES, scene_blend[1])
    data = json.loads(report.read_text())
    assert data["output"] == str(scene) and not data["interrupted"]
    assert sorted(o["object"] for o in data["objects"]) == MESHES
    assert all(o["status"] == "placed" and o["flow"] == "text-to-texture" and o["cost"] == 30 for o in data["objects"])
    assert sorted(o["task_uuid"] for o in data["objects"]) == sorted(gen.gen.created)
    assert "4 placed, 0 failed" in proc.stdout
    assert temp_left(blender_env) == []


@pytest.mark.parametrize(
    ("select", "names"),
    [(("--collection", "Props"), ["Chair", "Cup"]), (("--objects", "Leg", "Table"), ["Leg", "Table"])],
    ids=["collection", "objects"],
)
def test_a_collection_or_named_objects_only(blender, blender_env, gen, scene, scene_blend, tmp_path, select, names):
    out, report = tmp_path / "out" / "textured.blend", tmp_path / "report.json"
    before = scene.read_bytes()

    proc = texture(blender, blender_env, gen, scene, "--prompt", "rusty iron", *select, "-o", out, "--report", report)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(gen.gen.created) == 2
    assert_in_place(inspect(blender, out, blender_env), names, scene_blend[1])
    assert sorted(o["object"] for o in json.loads(report.read_text())["objects"]) == names
    assert scene.read_bytes() == before  # -o given: the opened file is left alone


@pytest.mark.parametrize("tool", ["image", "remesh"])
def test_texture_from_an_image_and_remesh(blender, blender_env, gen, scene, scene_blend, tmp_path, tool):
    out, image = tmp_path / "out.blend", tmp_path / "ref.png"
    image.write_bytes(preview_png())
    args = ("--image", image) if tool == "image" else ("--remesh", "5000")
    flow = "texture-model" if tool == "image" else "model-remesh"

    proc = texture(blender, blender_env, gen, scene, *args, "--objects", "Chair", "-o", out)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    (created,) = _creations(gen)
    assert created.path.endswith("/" + flow)
    body = json.loads(created.body)
    assert body["polygon_limit"] == (5000 if tool == "remesh" else 1_000_000)
    assert_in_place(inspect(blender, out, blender_env), ["Chair"], scene_blend[1], flow)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--prompt", "oak", "--objects", "Chair", "Sofa"), "no object named 'Sofa' in this file"),
        (("--prompt", "oak", "--collection", "Nope"), "no collection named 'Nope' in this file"),
        (("--prompt", "oak", "--objects", "Lamp"), "not a mesh object: 'Lamp' (empty)"),
        (("--prompt", "ab"), "Describe the texture in at least 3 characters."),
        (("--objects", "Chair"), "one of the arguments --prompt --image --remesh is required"),
        (("--remesh", "10"), "--remesh must be between 1,000 and 1,500,000"),
        (("--remesh", "5000", "--texture-size", "2048"), "--texture-size and --polygon-limit are for texturing"),
    ],
    ids=["unknown-object", "unknown-collection", "not-a-mesh", "short-prompt", "no-tool", "remesh-range", "mixed"],
)
def test_bad_usage_exits_2_before_any_request(blender, blender_env, gen, scene, tmp_path, args, says):
    before = scene.read_bytes()

    proc = texture(blender, blender_env, gen, scene, *args)

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr
    assert gen.requests == []
    assert scene.read_bytes() == before
    assert temp_left(blender_env) == []


def test_max_credits_too_low_refuses_and_creates_nothing(blender, blender_env, gen, scene, tmp_path):
    out = tmp_path / "out.blend"

    proc = texture(blender, blender_env, gen, scene, "--prompt", "oak", "--texture-size", "2048",
                   "--max-credits", "150", "-o", out)  # fmt: skip

    assert proc.returncode == 1, proc.stdout + proc.stderr
    # text-to-texture at 2048: 40 credits a task, one quote times four meshes
    assert "The 4 tasks would cost 160 credits, more than --max-credits 150" in proc.stderr
    assert "nothing was created" in proc.stderr
    assert gen.gen.created == [] and _creations(gen) == [] and gen.gen.uploaded_models == {}
    assert len([r for r in gen.requests if r.path.endswith("/tasks/pricing/quote")]) == 1
    assert not out.exists()
    assert temp_left(blender_env) == []


def test_max_credits_within_the_limit_textures(blender, blender_env, gen, scene, tmp_path):
    out = tmp_path / "out.blend"
    proc = texture(blender, blender_env, gen, scene, "--prompt", "oak", "--max-credits", "120", "-o", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "quoted: 120 credits for 4 tasks" in proc.stdout
    assert len(gen.gen.created) == 4


def test_one_object_failing_exits_1_and_places_the_others(blender, blender_env, gen, scene, scene_blend, tmp_path):
    out, report = tmp_path / "out.blend", tmp_path / "report.json"
    gen.gen.script_next("SUCCESS")
    gen.gen.script_next("FAILED", error="The texture could not be painted")

    proc = texture(blender, blender_env, gen, scene, "--prompt", "oak", "--objects", "Chair", "Cup", "Table",
                   "--jobs", "1", "-o", out, "--report", report)  # fmt: skip

    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = gen.gen.created[1]
    assert f"'Cup' {failed} failed: Task {failed[:8]} ended FAILED: The texture could not be painted" in proc.stdout
    assert "2 placed, 1 failed" in proc.stdout
    assert_in_place(inspect(blender, out, blender_env), ["Chair", "Table"], scene_blend[1])
    statuses = {o["object"]: o["status"] for o in json.loads(report.read_text())["objects"]}
    assert statuses == {"Chair": "placed", "Cup": "failed", "Table": "placed"}
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert temp_left(blender_env) == []


def test_ctrl_c_saves_what_was_placed_and_exits_1(blender, blender_env, gen, scene, scene_blend, tmp_path):
    out, report = tmp_path / "out.blend", tmp_path / "report.json"
    gen.gen.script_next("SUCCESS")
    gen.gen.script_next(hold=True)  # the second task runs until released: the batch is watching it
    env = {**blender_env, "TRIVERSE_API_URL": gen.base_url, "TRIVERSE_API_KEY": API_KEY}
    args = ["--prompt", "oak", "--objects", "Chair", "Table", "--jobs", "1", "-o", out, "--report", report]
    proc = subprocess.Popen(
        blender_cmd(blender, scene, "--python", SCRIPT, "--", *args),
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 60
    while not (any(" placed" in line for line in lines) and len(gen.gen.created) == 2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("never saw Chair placed and Table's task held:\n" + "".join(lines))
        time.sleep(0.05)

    proc.send_signal(signal.SIGINT)

    try:
        assert proc.wait(timeout=30) == 1, "".join(lines)
    finally:
        gen.gen.release(gen.gen.created[1])
    reader.join(5)
    output = "".join(lines)
    assert "interrupted: saving what was placed" in output
    assert "Traceback" not in output
    assert_in_place(inspect(blender, out, blender_env), ["Chair"], scene_blend[1])
    data = json.loads(report.read_text())
    assert data["interrupted"] and [o["object"] for o in data["objects"]] == ["Chair"]
    assert temp_left(blender_env) == []
