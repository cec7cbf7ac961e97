"""The main job on an embedded default: no key, no internet, nothing to install by hand.

    python3 scripts/demo.py

1. prepares .venv/bpy50 (Blender 5.0 as a Python module) on first run;
2. makes a textured sample model with Blender's own glTF exporter;
3. starts the local stand-in for the Triverse service on loopback, serving it as a finished task;
4. imports the task with scripts/batch_import.py, exactly as a user would (a separate process,
   key and URL from TRIVERSE_API_KEY / TRIVERSE_API_URL), which saves a .blend;
5. renders that .blend with Cycles on the CPU to a PNG;
6. generates a model from a prompt with scripts/generate.py (priced first, watched live over the
   stand-in's WebSocket, imported when done) into a second .blend; prints the paths.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap

ROOT = _bootstrap.ROOT


def render(blend: Path, png: Path, samples: int, size: tuple[int, int]) -> None:
    """Frame the imported objects with a camera and a sun, render with Cycles on the CPU."""
    import bpy
    from mathutils import Vector

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    objects = [ob for ob in scene.objects if ob.get("triverse_task_uuid")]
    corners = [ob.matrix_world @ Vector(c) for ob in objects if ob.type == "MESH" for c in ob.bound_box]
    low = Vector([min(c[i] for c in corners) for i in range(3)])
    high = Vector([max(c[i] for c in corners) for i in range(3)])
    centre, radius = (low + high) / 2, max((high - low).length / 2, 0.1)

    cam = bpy.data.objects.new("Demo Camera", bpy.data.cameras.new("Demo Camera"))
    scene.collection.objects.link(cam)
    cam.location = centre + Vector((0.0, -1.0, 0.35)).normalized() * radius * 3.2
    cam.rotation_euler = (centre - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    sun = bpy.data.objects.new("Demo Sun", bpy.data.lights.new("Demo Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.8, 0.2, 0.6)
    scene.collection.objects.link(sun)
    world = scene.world or bpy.data.worlds.new("Demo World")
    scene.world = world
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.32, 0.36, 0.42, 1.0)

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.filepath = str(png)
    bpy.ops.render.render(write_still=True)


def main() -> int:
    """Run the demo; return the batch script's exit code (0 when the model was imported)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo", help="folder for the .blend and the PNG")
    parser.add_argument("--samples", type=int, default=24, help="Cycles samples (default 24)")
    args = parser.parse_args()
    _bootstrap.reexec_in("bpy50")

    import sample_asset
    from standin_server import StandinServer

    started = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    asset = sample_asset.make_glb(out / "sample-model.glb")
    print(f"[demo] sample model made with Blender's glTF exporter: {asset}", flush=True)

    task = str(uuid.uuid4())
    blend, png = out / "demo.blend", out / "demo.png"
    generated, report = out / "generated.blend", out / "generate-report.json"
    # The stand-in "generates" the same sample model, through its queue and progress timeline.
    with StandinServer(api_key="demo-key", generated_asset=asset, timeline_step=0.3, record_watch=True) as server:
        server.add(task, asset)
        print(f"[demo] local stand-in for Triverse at {server.base_url}, task {task}", flush=True)
        env = {
            **os.environ,
            "TRIVERSE_API_URL": server.base_url,
            "TRIVERSE_API_KEY": "demo-key",
            # The demo never touches your own Blender configuration or library.
            "BLENDER_USER_RESOURCES": str(out / "blender-user"),
        }
        cmd = [sys.executable, str(ROOT / "scripts" / "batch_import.py"), "--output", str(blend), task]
        print(
            f"[demo] $ TRIVERSE_API_URL=... TRIVERSE_API_KEY=... python scripts/batch_import.py --output {blend} {task}"
        )
        code = subprocess.run(cmd, env=env, check=False).returncode
        seen = [r for r in server.requests if "/tasks/download/" in r.path]
        if code != 0:
            print(f"[demo] the import failed (exit code {code})", file=sys.stderr)
            return code
        print(f"[demo] the stand-in served {len(seen)} download request(s)", flush=True)

        # The round trip: generate from a prompt, priced first, watched live, imported when done.
        prompt = "a monkey on a pedestal"
        cmd = [sys.executable, str(ROOT / "scripts" / "generate.py"), "--output", str(generated),
               "--max-credits", "100", "--report", str(report), prompt]  # fmt: skip
        print(f'[demo] $ python scripts/generate.py --output {generated} --max-credits 100 "{prompt}"', flush=True)
        code = subprocess.run(cmd, env=env, check=False).returncode
        watched = len([r for r in server.requests if "/tasks/watch/" in r.path])
    if code != 0:
        print(f"[demo] the generation failed (exit code {code})", file=sys.stderr)
        return code
    print(f"[demo] the task was watched live over {watched} WebSocket connection(s)", flush=True)
    render(blend, png, args.samples, (640, 480))
    print(f"\n[demo] done in {time.perf_counter() - started:.0f} s")
    print(f"[demo] scene:  {blend}")
    print(f"[demo] render: {png}")
    print(f"[demo] generated from a prompt: {generated} (report: {report})")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # bpy 4.2 may crash at interpreter exit; 5.0 does not, but the result is written either way
