"""Texture or remesh the mesh objects of a .blend with Triverse, each result in its original's place, and save it.

    blender -b scene.blend --python scripts/texture.py -- --prompt "weathered oak" [options]   # text-to-texture
    blender -b scene.blend --python scripts/texture.py -- --image ref.png [options]            # texture-model
    blender -b scene.blend --python scripts/texture.py -- --remesh 5000 [options]              # model-remesh

Targets: every mesh object of the scene (but originals a previous run already replaced), the meshes of one
collection (--collection, its child collections included) or named objects (--objects); a name that does not
exist is bad usage, refused before any request. Objects sharing one mesh without modifiers get one task. Each
result takes its original's place (world matrix, parent, collections); the original is hidden, never deleted.

The API key comes from TRIVERSE_API_KEY (or the installed add-on's preferences), the service URL from
TRIVERSE_API_URL. Every task created is kept in My Generations. Prints one line per object; exits 0 when every
object was placed, 1 when some failed (the others are still placed and saved), --max-credits refused the batch
(nothing created), the .blend could not be saved, the batch was interrupted (Ctrl-C: what was placed is saved)
or stopped on an unexpected error; 2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import batch_import  # the same add-on loading, argv, saving, report and exit codes as the other batches

EXIT_OK, EXIT_FAILED, EXIT_USAGE = batch_import.EXIT_OK, batch_import.EXIT_FAILED, batch_import.EXIT_USAGE
POLYGONS = (1_000, 1_500_000)
RESULT = "triverse_result"  # on an original a run replaced: its result (`blender.common.scene_placement.RESULT`)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options; argparse exits with 2 on bad usage."""
    parser = argparse.ArgumentParser(
        prog="texture.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tool = parser.add_mutually_exclusive_group(required=True)
    tool.add_argument("--prompt", help="texture from this description (text-to-texture)")
    tool.add_argument("--image", type=Path, help="texture from this reference image, PNG, JPEG or WebP (texture-model)")
    tool.add_argument("--remesh", type=int, metavar="POLYGONS", help="remesh to at most this many polygons")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--objects", nargs="+", metavar="NAME", help="these objects (default: every mesh object)")
    target.add_argument("--collection", metavar="NAME", help="the mesh objects of this collection (recursively)")
    parser.add_argument("--texture-size", type=int, choices=(1024, 2048, 4096), help="texturing only (default 1024)")
    parser.add_argument("--polygon-limit", type=int, help="texturing only: 1,000 to 1,500,000 (default 1,000,000)")
    parser.add_argument("--jobs", "-j", type=int, default=4, help="tasks at once (default 4, 1 to 32)")
    parser.add_argument("--max-credits", type=float, help="refuse to start when the quoted total exceeds this")
    parser.add_argument(
        "--output", "-o", type=Path, help="the .blend to save (default: the opened file, else triverse-texture.blend)"
    )
    parser.add_argument("--report", type=Path, help="write a JSON report of every object to this file")
    args = parser.parse_args(argv)
    if args.remesh is not None:
        if args.texture_size is not None or args.polygon_limit is not None:
            parser.error("--texture-size and --polygon-limit are for texturing (--prompt or --image); "
                         "--remesh takes the polygon count itself")  # fmt: skip
        args.polygon_limit = args.remesh
    args.texture_size = args.texture_size or 1024
    args.polygon_limit = 1_000_000 if args.polygon_limit is None else args.polygon_limit
    what = "--remesh" if args.remesh is not None else "--polygon-limit"
    if not POLYGONS[0] <= args.polygon_limit <= POLYGONS[1]:
        parser.error(f"{what} must be between {POLYGONS[0]:,} and {POLYGONS[1]:,}")
    if not 1 <= args.jobs <= 32:
        parser.error("--jobs must be between 1 and 32")
    if args.max_credits is not None and args.max_credits < 0:
        parser.error("--max-credits must be 0 or more")
    return args


def usage_error(reason: str) -> int:
    """Say why the arguments cannot be used (as argparse does) and answer the usage exit code."""
    print(f"texture.py: error: {reason}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def targets(args: argparse.Namespace) -> list[Any]:
    """The objects to texture or remesh, in a stable order; LookupError with the reason for a name not found."""
    import bpy

    if args.objects:
        missing = [name for name in dict.fromkeys(args.objects) if bpy.data.objects.get(name) is None]
        if missing:
            names = ", ".join(repr(n) for n in missing)
            raise LookupError(f"no object named {names} in this file: nothing was sent")
        objects = [bpy.data.objects[name] for name in dict.fromkeys(args.objects)]
        others = [f"{ob.name!r} ({ob.type.lower()})" for ob in objects if ob.type != "MESH"]
        if others:
            raise LookupError(f"not a mesh object: {', '.join(others)}; nothing was sent")
        return objects
    if args.collection is not None:
        collection = bpy.data.collections.get(args.collection)
        if collection is None:
            raise LookupError(f"no collection named {args.collection!r} in this file: nothing was sent")
        candidates, where = list(collection.all_objects), f"collection {args.collection!r}"
    else:
        candidates, where = list(bpy.context.scene.objects), f"scene {bpy.context.scene.name!r}"
    # An original a run already replaced stays hidden under its result: its result is what is there now.
    meshes = [ob for ob in candidates if ob.type == "MESH" and not isinstance(ob.get(RESULT), bpy.types.Object)]
    if not meshes:
        raise LookupError(f"no mesh object to texture or remesh in {where}: nothing was sent")
    return sorted(meshes, key=lambda ob: ob.name)


def run(args: argparse.Namespace, staging: list[Path]) -> int:
    """Check the targets, price (with --max-credits), texture or remesh, place, save and report; the exit code."""
    import bpy

    try:
        objects = targets(args)
    except LookupError as exc:
        return usage_error(str(exc))
    opened = bpy.data.filepath
    output = (args.output or (Path(opened) if opened else Path("triverse-texture.blend"))).resolve()
    batch_import.check_output(output)
    addon = batch_import.prepare_addon(staging)
    batch = importlib.import_module(addon.__name__ + ".blender.scene_tools.batch")
    export = importlib.import_module(addon.__name__ + ".blender.scene_tools.export")
    scene_request = importlib.import_module(addon.__name__ + ".service.scene_request")
    errors = importlib.import_module(addon.__name__ + ".service.errors")

    where = f"collection {args.collection!r}" if args.collection else "the objects named"
    try:
        groups = export.groups_of(objects, among=where)
    except errors.InvalidParameters as exc:
        return usage_error(str(exc))
    flow = "model-remesh" if args.remesh is not None else "texture-model" if args.image else "text-to-texture"

    def request_for(name: str) -> Any:
        return scene_request.SceneRequest(
            flow=flow,
            prompt=args.prompt or "",
            image_path=str(args.image.resolve()) if args.image else "",
            polygon_limit=args.polygon_limit,
            texture_size=args.texture_size,
            source_object=name,
        )

    problems = request_for(groups[0].first.name).validate()
    if problems:
        return usage_error(next(iter(problems.values())))
    started = time.perf_counter()
    if args.max_credits is not None:
        price_batch(addon, request_for(groups[0].first.name), len(groups), args.max_credits)

    count = sum(len(group.objects) for group in groups)
    interrupted = False
    results: list[Any] = []  # scene_tools.batch.SceneResult, one per object as they come: an interrupt keeps them

    def collect(r: Any) -> None:
        results.append(r)
        head = f"[{len(results)}/{count}] {r.object!r} {r.task_uuid or '-'}"
        cost = f", {r.cost} credits" if r.cost is not None else ""
        if r.status == "placed":
            print(f"{head} placed{cost}, {r.seconds:.2f} s: {r.report}")
        else:
            print(f"{head} failed: {r.error}")
        sys.stdout.flush()

    print(f"{flow}: {count} objects in {len(groups)} tasks", flush=True)
    try:  # every object's failure is a result line; only an interrupt stops the batch
        batch.run(bpy.context, groups, request_for, jobs=args.jobs, on_result=collect)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: saving what was placed (the tasks still running stay in My Generations)", flush=True)
    except errors.TriverseError as exc:  # before any task: the export or the options (checked above)
        raise batch_import.BatchError(f"Nothing was sent: {exc}") from None
    finally:
        asset_store = importlib.import_module(addon.__name__ + ".blender.common.asset_store")
        asset_store.wait()  # the results' assets are written (and their preview processes ended) before exiting

    return batch_import.finish(args, output, results, count, started, interrupted, done="placed", listed="objects")


def price_batch(addon: Any, request: Any, tasks: int, limit: float) -> None:
    """One task's quote times the number of tasks; BatchError (nothing created) when it exceeds `limit`."""
    blender_addon = importlib.import_module(addon.__name__ + ".blender.common.addon")
    api = importlib.import_module(addon.__name__ + ".service.api")
    generation_api = importlib.import_module(addon.__name__ + ".service.generation_api")
    errors = importlib.import_module(addon.__name__ + ".service.errors")
    try:
        with api.TriverseClient(blender_addon.get_settings(), online_access=blender_addon.online_access()) as client:
            quote = generation_api.quote(client, request)
    except errors.TriverseError as exc:
        raise batch_import.BatchError(f"Cannot price the batch, so nothing was created: {exc}") from None
    total, balance = quote.cost_credits * tasks, quote.available_credits
    if total > limit:
        raise batch_import.BatchError(
            f"The {tasks} tasks would cost {total:g} credits, more than --max-credits {limit:g} "
            f"(balance {balance:g}): nothing was created."
        )
    print(f"quoted: {total:g} credits for {tasks} tasks (balance {balance:g})", flush=True)


def main(argv: list[str]) -> int:
    """Run the batch and turn every outcome into an exit code (Blender exits 0 on an escaped exception)."""
    note = "interrupted before any result was placed: nothing saved (tasks created stay in My Generations)"
    return batch_import.guarded(argv, parse_args, run, note)


if __name__ == "__main__":
    batch_import.leave(main(batch_import.script_argv()))
