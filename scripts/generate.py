"""Generate Triverse models from prompts or images, import them into one scene and save it.

    blender -b --python scripts/generate.py -- [options] PROMPT [PROMPT ...]
    blender -b --python scripts/generate.py -- --image [options] IMAGE [IMAGE ...]
    python scripts/generate.py [options] --from-file prompts.txt      (any Python with the bpy module)

One task per prompt (or image, with --image). The API key comes from TRIVERSE_API_KEY (or the installed
add-on's preferences), the service URL from TRIVERSE_API_URL. Every task created is kept in My
Generations. Prints one line per task; exits 0 when every model was imported, 1 when some failed (the
others are still imported and saved), --max-credits refused the batch (nothing created), the .blend
could not be saved, the batch was interrupted (Ctrl-C: what was imported is saved) or stopped on an
unexpected error; 2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import batch_import  # the same add-on loading, argv and exit codes as the import batch

EXIT_OK, EXIT_FAILED, EXIT_USAGE = batch_import.EXIT_OK, batch_import.EXIT_FAILED, batch_import.EXIT_USAGE
POLYGONS = (1_000, 1_500_000)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options; argparse exits with 2 on bad usage."""
    parser = argparse.ArgumentParser(
        prog="generate.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", nargs="*", metavar="PROMPT_OR_IMAGE", help="prompts (or image files with --image)")
    parser.add_argument("--from-file", type=Path, help="prompts (or image paths with --image), one per line")
    parser.add_argument("--image", action="store_true", help="the inputs are image files: image-to-model")
    parser.add_argument("--negative-prompt", default="", help="what to avoid (text inputs)")
    parser.add_argument("--mesh-only", action="store_true", help="geometry only, no textures")
    parser.add_argument("--polygon-limit", type=int, default=1_000_000, help="1,000 to 1,500,000 (default 1,000,000)")
    parser.add_argument("--texture-size", type=int, choices=(1024, 2048, 4096), default=1024)
    parser.add_argument("--turbo", action="store_true", help="faster geometry, maybe lower quality")
    parser.add_argument("--jobs", "-j", type=int, default=4, help="tasks watched at once (default 4, 1 to 32)")
    parser.add_argument("--max-credits", type=float, help="refuse to start when the quoted total exceeds this")
    parser.add_argument("--timeout", type=float, default=3600.0, help="longest wait for each task, in seconds")
    parser.add_argument("--output", "-o", type=Path, help="the .blend to save (default: triverse-generate.blend)")
    parser.add_argument("--report", type=Path, help="write a JSON report of every task to this file")
    args = parser.parse_args(argv)
    if args.from_file:
        try:
            lines = args.from_file.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"cannot read {args.from_file}: {getattr(exc, 'strerror', None) or exc}")
        args.inputs += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not args.inputs:
        parser.error("give at least one prompt (or image with --image), or --from-file")
    if not 1 <= args.jobs <= 32:
        parser.error("--jobs must be between 1 and 32")
    if not POLYGONS[0] <= args.polygon_limit <= POLYGONS[1]:
        parser.error(f"--polygon-limit must be between {POLYGONS[0]:,} and {POLYGONS[1]:,}")
    if args.max_credits is not None and args.max_credits < 0:
        parser.error("--max-credits must be 0 or more")
    if args.timeout <= 0:
        parser.error("--timeout must be more than 0")
    return args


def run(args: argparse.Namespace, staging: list[Path]) -> int:
    """Price (with --max-credits), generate, import, save and report; return the exit code."""
    import bpy

    opened = bpy.data.filepath
    if not opened:
        bpy.ops.wm.read_homefile(use_empty=True)  # no default cube, camera and light in the result
    output = (args.output or (Path(opened) if opened else Path("triverse-generate.blend"))).resolve()
    batch_import.check_output(output)
    addon = batch_import.load_addon(staging)
    batch = importlib.import_module(addon.__name__ + ".batch_generate")
    generation = importlib.import_module(addon.__name__ + ".generation")
    errors = importlib.import_module(addon.__name__ + ".errors")
    preferences = importlib.import_module(addon.__name__ + ".preferences")
    if bpy.app.version < (3, 6, 0):
        batch_import.restore_numpy_bool()
    if not preferences.online_access():
        # Running a generation script is the user's explicit request to go online (not saved to prefs).
        bpy.context.preferences.system.use_online_access = True

    requests = [
        generation.GenerationRequest(
            prompt="" if args.image else text,
            negative_prompt="" if args.image else args.negative_prompt,
            image_path=str(Path(text).resolve()) if args.image else "",
            mesh_only=args.mesh_only,
            polygon_limit=args.polygon_limit,
            texture_size=args.texture_size,
            turbo=args.turbo,
        )
        for text in args.inputs
    ]
    started = time.perf_counter()
    if args.max_credits is not None:
        try:
            total, balance = batch.quote_total(requests, jobs=args.jobs)
        except errors.TriverseError as exc:
            raise batch_import.BatchError(f"Cannot price the batch, so nothing was created: {exc}") from None
        if total > args.max_credits:
            raise batch_import.BatchError(
                f"The {len(requests)} tasks would cost {total:g} credits, more than --max-credits "
                f"{args.max_credits:g} (balance {balance:g}): nothing was created."
            )
        print(f"quoted: {total:g} credits for {len(requests)} tasks (balance {balance:g})", flush=True)

    count = len(requests)
    interrupted = False
    results: list[Any] = []  # batch_generate.GenerationResult, collected as they come: an interrupt keeps them

    def collect(r: Any) -> None:
        results.append(r)
        head = f"[{len(results)}/{count}] {r.task_uuid or '-'} {(r.prompt or Path(r.image).name)[:40]!r}"
        cost = f", {r.cost} credits" if r.cost is not None else ""
        if r.status == "imported":
            print(f"{head} imported: {r.objects} objects{cost}, {r.seconds:.2f} s")
        else:
            print(f"{head} failed: {r.error}")
        sys.stdout.flush()

    try:  # every task's failure is a result line; only an interrupt stops the batch
        batch.generate_tasks(requests, jobs=args.jobs, timeout=args.timeout, on_result=collect)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: saving what was imported (the tasks still running stay in My Generations)", flush=True)

    imported = [r for r in results if r.status == "imported"]
    failed = count - len(imported)
    code = EXIT_OK if failed == 0 and not interrupted else EXIT_FAILED
    saved = False
    if imported:
        try:
            batch_import.save(output)
            saved = True
            print(f"saved {output}", flush=True)
        except batch_import.BatchError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            code = EXIT_FAILED
    else:
        print("nothing was imported: no file saved", flush=True)
    if args.report:
        report = {
            "seconds": round(time.perf_counter() - started, 3),
            "jobs": args.jobs,
            "output": str(output) if saved else None,
            "interrupted": interrupted,
            "tasks": [r.as_dict() for r in results],
        }
        try:
            args.report.write_text(json.dumps(report, indent=2))
        except OSError as exc:
            print(f"error: Could not write the report {args.report}: {exc.strerror or exc}", file=sys.stderr)
            code = EXIT_FAILED
    print(f"{len(imported)} imported, {failed} failed in {time.perf_counter() - started:.1f} s", flush=True)
    return code


def main(argv: list[str]) -> int:
    """Run the batch and turn every outcome into an exit code (Blender exits 0 on an escaped exception)."""
    staging: list[Path] = []
    try:
        args = parse_args(argv)
        try:
            import bpy  # noqa: F401 - only to tell a Python without Blender apart
        except ImportError:
            print("This script needs Blender: run it with `blender -b --python` or a Python with the bpy module.",
                  file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
        # Blender's own SIGINT handler only sets a break flag for renders: let Ctrl-C reach Python.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return run(args, staging)
    except SystemExit as exc:  # argparse's usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except batch_import.BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted before any import: nothing saved (tasks created stay in My Generations)", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the last resort: exit 1, reason and traceback
        traceback.print_exc()
        print(f"error: the batch stopped on an unexpected error ({type(exc).__name__}: {exc}).", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for folder in staging:  # the staged add-on (symlinks into the checkout) is no longer needed
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    batch_import.leave(main(batch_import.script_argv()))
