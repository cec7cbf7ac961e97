"""Import many Triverse tasks into one scene and save it.

    blender -b --python scripts/batch_import.py -- [options] UUID [UUID ...]
    python scripts/batch_import.py [options] UUID [UUID ...]     (any Python with the bpy module)

The API key comes from TRIVERSE_API_KEY (or the installed add-on's preferences), the service URL
from TRIVERSE_API_URL. Prints one line per task. Exit status, under `blender -b` as under Python:
0 every task was imported and saved; 1 some task failed (the others are still imported and saved),
the .blend could not be saved, the batch was interrupted (Ctrl-C: what was imported is saved) or
stopped on an unexpected error (its reason and traceback on stderr); 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

HERE = Path(__file__).resolve().parent
CHECKOUT_PACKAGE = HERE.parent / "triverse_addon"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class BatchError(Exception):
    """A reason the batch cannot go on or cannot save, in one sentence for the user (exit 1)."""


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


def check_output(output: Path) -> None:
    """Refuse before any download an output that could not be saved (its folder is made at save time)."""
    if output.is_dir():
        raise BatchError(f"Cannot save to {output}: it is a folder; give the path of a .blend file with -o.")
    existing = next(p for p in output.parents if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BatchError(f"Cannot save to {output}: {existing} is not a folder this user can write to.")


def load_addon(staging: list[Path]) -> ModuleType:
    """The add-on's package: from this checkout when the script sits in one, else the installed extension.

    A checkout is staged into a temporary folder, appended to `staging` for the caller to remove.
    """
    import addon_utils
    import bpy

    if CHECKOUT_PACKAGE.is_dir():
        sys.path.insert(0, str(HERE))
        import build  # the same staging the zip build and the tests use

        user_dir = Path(tempfile.mkdtemp(prefix="triverse-batch-"))
        staging.append(user_dir)
        build.stage(user_dir, link=True)
        if bpy.app.version >= (4, 2, 0):
            repo = bpy.context.preferences.extensions.repos.new(
                name="Triverse checkout", module="triverse_checkout", custom_directory=str(user_dir), source="USER"
            )
            module = f"bl_ext.{repo.module}.triverse"
        else:  # Blender before extensions: a legacy add-on on sys.path
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
            raise BatchError(
                "The Triverse extension is not installed in this Blender, and this script is not in a checkout."
            )
        module = names[0]
    if module not in bpy.context.preferences.addons:
        raise BatchError(f"Could not enable the Triverse add-on ({module}); see the messages above.")
    return importlib.import_module(module)


def prepare_addon(staging: list[Path]) -> ModuleType:
    """The enabled add-on, ready for a batch: Blender 3.4's glTF importer patched, online access allowed for this
    run (running a script that downloads is the user's explicit request to go online; not saved to prefs)."""
    import bpy

    addon = load_addon(staging)
    if bpy.app.version < (3, 6, 0):
        restore_numpy_bool()
    blender_addon = importlib.import_module(addon.__name__ + ".blender.common.addon")
    if not blender_addon.online_access():
        bpy.context.preferences.system.use_online_access = True
    return addon


def restore_numpy_bool() -> None:
    """Debian's Blender 3.4 glTF importer uses `numpy.bool`, which Debian's numpy 1.24 removed: put it back.

    Only Debian-style packaging pairs a Blender older than 3.6 with such a numpy (Blender's own builds
    bundle a numpy that still has it), and only the alias is restored: harmless wherever it exists.
    """
    import numpy

    if "bool" not in vars(numpy):  # not hasattr: numpy 1.24 warns on every look-up of the old alias
        numpy.bool = bool  # type: ignore[attr-defined]


def save(output: Path) -> None:
    """Save the scene as `output`, or raise BatchError with Blender's reason."""
    import bpy

    try:
        if not output.parent.exists():  # whatever else is there, Blender's own error says why it cannot save
            output.parent.mkdir(parents=True)
        result = bpy.ops.wm.save_as_mainfile(filepath=str(output), check_existing=False)
    except (OSError, RuntimeError) as exc:  # Blender reports a failed save as a RuntimeError
        reason = str(exc).strip().splitlines()[0].removeprefix("Error: ") if str(exc).strip() else type(exc).__name__
        raise BatchError(f"Could not save {output}: {reason}") from None
    if "FINISHED" not in result or not output.is_file():
        raise BatchError(f"Could not save {output}: Blender did not write it (see the messages above).")


def run(args: argparse.Namespace, staging: list[Path]) -> int:
    """Import, save and report; return the exit code."""
    import bpy

    opened = bpy.data.filepath
    if not opened:
        bpy.ops.wm.read_homefile(use_empty=True)  # no default cube, camera and light in the result
    output = (args.output or (Path(opened) if opened else Path("triverse-import.blend"))).resolve()
    check_output(output)
    addon = prepare_addon(staging)
    batch = importlib.import_module(addon.__name__ + ".blender.importing.batch")
    errors = importlib.import_module(addon.__name__ + ".service.errors")

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

    return finish(args, output, results, total, started, interrupted)


def finish(args: argparse.Namespace, output: Path, results: list[Any], total: int, started: float,
           interrupted: bool, done: str = "imported", listed: str = "tasks") -> int:  # fmt: skip
    """Save what was imported, write the report, print the summary; return the exit code (every batch).

    `done`: the status of a success ("placed" for the scene tools), `listed`: the report's key for the results.
    """
    imported = [r for r in results if r.status == done]
    failed = total - len(imported)
    code = EXIT_OK if failed == 0 and not interrupted else EXIT_FAILED
    saved = False
    if imported:
        try:
            save(output)
            saved = True
            print(f"saved {output}", flush=True)
        except BatchError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            code = EXIT_FAILED
    else:
        print(f"nothing was {done}: no file saved", flush=True)
    if args.report:
        report = {
            "seconds": round(time.perf_counter() - started, 3),
            "jobs": args.jobs,
            "output": str(output) if saved else None,
            "interrupted": interrupted,
            listed: [r.as_dict() for r in results],
        }
        try:
            args.report.write_text(json.dumps(report, indent=2))
        except OSError as exc:
            print(f"error: Could not write the report {args.report}: {exc.strerror or exc}", file=sys.stderr)
            code = EXIT_FAILED
    print(f"{len(imported)} {done}, {failed} failed in {time.perf_counter() - started:.1f} s", flush=True)
    return code


def main(argv: list[str]) -> int:
    """Run the batch and turn every outcome into an exit code (Blender exits 0 on an escaped exception)."""
    return guarded(argv, parse_args, run, "interrupted before any import: nothing saved")


def guarded(
    argv: list[str],
    parse: Callable[[list[str]], argparse.Namespace],
    run_batch: Callable[[argparse.Namespace, list[Path]], int],
    early_interrupt: str,
) -> int:
    """Parse, run, and turn every outcome into an exit code; the staged add-on is removed in any case."""
    staging: list[Path] = []
    try:
        args = parse(argv)
        try:
            import bpy  # noqa: F401 - only to tell a Python without Blender apart
        except ImportError:
            print(
                "This script needs Blender: run it with `blender -b --python` or a Python that has the bpy module.",
                file=sys.stderr,
            )
            return EXIT_USAGE
        # Blender's own SIGINT handler only sets a break flag for renders: let Ctrl-C reach Python.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return run_batch(args, staging)
    except SystemExit as exc:  # argparse's usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(early_interrupt, file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the last resort: exit 1, reason and traceback
        traceback.print_exc()
        print(f"error: the batch stopped on an unexpected error ({type(exc).__name__}: {exc}).", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for folder in staging:  # the staged add-on (symlinks into the checkout) is no longer needed
            shutil.rmtree(folder, ignore_errors=True)


def leave(code: int) -> NoReturn:
    """End the process with `code`, removing Blender's session temp folder as a normal quit would.

    Leaving directly: an exception escaping a `--python` script leaves Blender's exit status at 0, and
    bpy 4.2 can crash at interpreter exit after an import (the work is saved by then).
    """
    bpy = sys.modules.get("bpy")
    session = Path(bpy.app.tempdir) if bpy is not None and bpy.app.tempdir else None
    if session is not None and session.name.startswith("blender_"):
        shutil.rmtree(session, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main(script_argv()))
