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
import sys
import time
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
    addon = batch_import.prepare_addon(staging)
    batch = importlib.import_module(addon.__name__ + ".blender.generate.batch")
    generation = importlib.import_module(addon.__name__ + ".service.generation_request")
    errors = importlib.import_module(addon.__name__ + ".service.errors")

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

    return batch_import.finish(args, output, results, count, started, interrupted)


def main(argv: list[str]) -> int:
    """Run the batch and turn every outcome into an exit code (Blender exits 0 on an escaped exception)."""
    note = "interrupted before any import: nothing saved (tasks created stay in My Generations)"
    return batch_import.guarded(argv, parse_args, run, note)


if __name__ == "__main__":
    batch_import.leave(main(batch_import.script_argv()))
