"""Import many Triverse tasks into one scene and save it.

    blender -b --python scripts/batch_import.py -- [options] UUID [UUID ...]
    python scripts/batch_import.py [options] UUID [UUID ...]     (any Python with the bpy module)

The API key comes from TRIVERSE_API_KEY (or the installed add-on's preferences), the service URL
from TRIVERSE_API_URL. Prints one line per task; exits 0 when every task was imported, 1 when some
failed (the others are still imported and saved), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
CHECKOUT_PACKAGE = HERE.parent / "triverse_addon"
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options; argparse exits with 2 on bad usage."""
    parser = argparse.ArgumentParser(
        prog="batch_import.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("uuids", nargs="*", metavar="UUID", help="task UUIDs to import")
    parser.add_argument("--from-file", type=Path, help="a file of task UUIDs, one per line (# starts a comment)")
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        help="the .blend to save (default: triverse-import.blend, "
        "or the opened file when Blender was started with one)",
    )
    parser.add_argument("--jobs", "-j", type=int, default=4, help="parallel downloads (default 4, 1 to 32)")
    parser.add_argument(
        "--wait",
        type=float,
        nargs="?",
        const=600.0,
        default=0.0,
        metavar="SECONDS",
        help="wait for running tasks to succeed (default 600 s when given without a value)",
    )
    parser.add_argument("--report", type=Path, help="write a JSON report of every task to this file")
    args = parser.parse_args(argv)
    if args.from_file:
        try:
            lines = args.from_file.read_text("utf-8").splitlines()
        except OSError as exc:
            parser.error(f"cannot read {args.from_file}: {exc.strerror}")
        args.uuids += [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    if not args.uuids:
        parser.error("give at least one task UUID (or --from-file)")
    if not 1 <= args.jobs <= 32:
        parser.error("--jobs must be between 1 and 32")
    return args


def script_argv() -> list[str]:
    """The script's own arguments: after `--` under `blender`, all of them under plain Python."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1 :]
    return [] if getattr(sys, "frozen", False) else sys.argv[1:]


def load_addon() -> ModuleType:
    """The add-on's package: from this checkout when the script sits in one, else the installed extension."""
    import addon_utils
    import bpy

    if CHECKOUT_PACKAGE.is_dir():
        sys.path.insert(0, str(HERE))
        import build  # the same staging the zip build and the tests use

        user_dir = Path(tempfile.mkdtemp(prefix="triverse-batch-"))
        if bpy.app.version >= (4, 2, 0):
            build.stage(user_dir, link=True)
            prefs = bpy.context.preferences
            repo = prefs.extensions.repos.new(
                name="Triverse checkout", module="triverse_checkout", custom_directory=str(user_dir), source="USER"
            )
            module = f"bl_ext.{repo.module}.triverse"
        else:  # Blender before extensions: a legacy add-on on sys.path
            build.stage(user_dir, link=True)
            sys.path.insert(0, str(user_dir))
            module = "triverse"
        # Listed in the preferences (in memory: background sessions do not save them) so that its
        # AddonPreferences exist; the key then comes from TRIVERSE_API_KEY.
        addon_utils.enable(module, default_set=True)
    else:
        names = [m.module for m in bpy.context.preferences.addons if m.module.rsplit(".", 1)[-1] == "triverse"]
        if not names:
            for mod in addon_utils.modules():
                if mod.__name__.rsplit(".", 1)[-1] == "triverse":
                    addon_utils.enable(mod.__name__, default_set=True)
                    names = [mod.__name__]
                    break
        if not names:
            sys.exit("The Triverse extension is not installed in this Blender, and this script is not in a checkout.")
        module = names[0]
    if module not in bpy.context.preferences.addons:
        sys.exit(f"Could not enable the Triverse add-on ({module}); see the messages above.")
    return importlib.import_module(module)


def main() -> int:
    """Run the batch; return the exit code."""
    args = parse_args(script_argv())
    try:
        import bpy
    except ImportError:
        print(
            "This script needs Blender: run it with `blender -b --python` or a Python that has the bpy module.",
            file=sys.stderr,
        )
        return EXIT_USAGE

    opened = bpy.data.filepath
    if not opened:
        bpy.ops.wm.read_homefile(use_empty=True)  # no default cube, camera and light in the result
    output = (args.output or (Path(opened) if opened else Path("triverse-import.blend"))).resolve()
    addon = load_addon()
    batch = importlib.import_module(addon.__name__ + ".batch")
    errors = importlib.import_module(addon.__name__ + ".errors")

    if not bpy.app.online_access:
        # Running a download script is the user's explicit request to go online (not saved to prefs).
        bpy.context.preferences.system.use_online_access = True

    total = len(args.uuids)
    started = time.perf_counter()
    interrupted = False
    results: list[Any] = []  # the add-on's batch.TaskResult, collected as they come: an interrupt keeps them

    def collect(r: Any) -> None:
        results.append(r)
        head = f"[{len(results)}/{total}] {r.task_uuid}"
        if r.status == "imported":
            size = errors.human_size(r.bytes)
            print(f"{head} imported: {r.objects} objects, {r.format.upper()}, {size}, {r.seconds:.2f} s ({r.source})")
        else:
            print(f"{head} failed: {r.error}")
        sys.stdout.flush()

    try:  # every task's failure is a result line; only an interrupt stops the batch
        batch.import_tasks(args.uuids, jobs=args.jobs, wait=args.wait, on_result=collect)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: saving what was imported", flush=True)

    imported = [r for r in results if r.status == "imported"]
    failed = total - len(imported)
    if imported:
        output.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(output), check_existing=False)
        print(f"saved {output}", flush=True)
    else:
        print("nothing was imported: no file saved", flush=True)
    if args.report:
        args.report.write_text(
            json.dumps(
                {
                    "seconds": round(time.perf_counter() - started, 3),
                    "jobs": args.jobs,
                    "output": str(output) if imported else None,
                    "interrupted": interrupted,
                    "tasks": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
    print(f"{len(imported)} imported, {failed} failed in {time.perf_counter() - started:.1f} s", flush=True)
    return EXIT_OK if failed == 0 and not interrupted else EXIT_SOME_FAILED


if __name__ == "__main__":
    try:
        code = main()
    except SystemExit as exc:  # argparse's usage errors; Blender's --python would not pass the code on
        code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if not isinstance(exc.code, int) and exc.code:
            print(exc.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # bpy 4.2 can crash at interpreter exit after an import; the work is saved, so leave directly.
    os._exit(code)
