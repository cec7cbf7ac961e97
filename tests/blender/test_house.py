"""What the reorganisation fixed: the status bar's cancel of a generation still being created, a generation's
own words when it is cancelled, settings resolved for drawing that never touch the disk, and a start that
leaves the network stack to a background thread."""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bpy
from conftest import MODULE, REPO_DIR, addon_prefs


def _mod(name: str):
    return importlib.import_module(f"{MODULE}.{name}")


def test_the_status_bars_cancel_stops_a_generation_whose_task_does_not_exist_yet(standin):
    # A service that accepts the connection and never answers: the creation is still under way.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    addon_prefs().base_url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/v1"
    addon_prefs().read_timeout = 2.0  # the worker's blocked read ends soon after the test
    request = _mod("service.generation_request").GenerationRequest(prompt="a chair being created")
    job = _mod("service.generate").GenerateJob.begin(
        _mod("blender.common.addon").get_settings(), request, "order-being-created", store=None
    )
    try:
        assert job.task_uuid == "" and job.created is None  # what the status bar shows: "New task"
        assert _mod("blender.common.job_progress").progress_text(job) == (None, "Creating the task...")
        # The status bar's button passes the job's key (before, the empty task UUID: "already finished").
        assert bpy.ops.triverse.cancel_import(key=job.key) == {"FINISHED"}
        deadline = time.monotonic() + 5
        while not job.poll():
            assert time.monotonic() < deadline, f"the generation was not stopped: {job.phase}"
            time.sleep(0.02)
        assert isinstance(job.error, _mod("service.errors").Cancelled)
    finally:
        job.cancel()
        job.finish()
        job.join(5)
        silent.close()


def test_a_cancelled_generation_is_called_a_generation():
    reporting, errors = _mod("blender.common.reporting"), _mod("service.errors")
    said: list[tuple[set[str], str]] = []

    class Operator:
        def report(self, kind: set[str], text: str) -> None:
            said.append((kind, text))

    assert reporting.report_failure(Operator(), errors.Cancelled("x"), "generation") == {"CANCELLED"}
    assert reporting.report_failure(Operator(), errors.Cancelled("x")) == {"CANCELLED"}
    assert said == [
        ({"WARNING"}, "Triverse generation cancelled: nothing was added to the scene."),
        ({"WARNING"}, "Triverse import cancelled: nothing was added to the scene."),
    ]


def test_what_drawing_resolves_creates_no_folder(standin):
    addon, library = _mod("blender.common.addon"), _mod("blender.library")
    prefs = addon_prefs()
    prefs.library_dir = ""  # the default folder, in the extension's user folder
    default = Path(addon.default_library_dir())
    assert not default.exists(), "the default library folder exists before anything was kept"
    addon.get_settings()
    addon.key_and_url()
    addon.why_no_request()
    library.shown_folder(bpy.context)
    assert not default.exists(), "resolving the settings created the library folder"


def test_enabling_imports_no_network_module_and_the_start_up_steps_load_it_on_the_main_thread(tmp_path):
    # A fresh process (this one has loaded everything already).
    script = textwrap.dedent(
        f"""
        import os, sys, threading
        os.environ["BLENDER_USER_RESOURCES"] = {str(tmp_path / "user")!r}
        import bpy, addon_utils
        bpy.context.preferences.extensions.repos.new(name="Dev", module="dev", custom_directory={str(REPO_DIR)!r},
                                                     source="USER")
        main = threading.main_thread()
        off_main = []

        class Spy:  # notes any import made off the main thread (two importing threads can deadlock)
            def find_spec(self, name, path=None, target=None):
                if threading.current_thread() is not main:
                    off_main.append(name)
                return None

        sys.meta_path.insert(0, Spy())
        addon_utils.enable("{MODULE}", default_set=True)
        at_enable = sorted(m for m in ("requests", "urllib3", "{MODULE}.service.api") if m in sys.modules)
        startup = sys.modules["{MODULE}.blender.common.startup"]
        steps = 0
        while startup.step():  # what a window's timer does, one step per tick
            steps += 1
        stores = sys.modules["{MODULE}.blender.common.stores"]
        print("RESULT", ",".join(at_enable) or "-", steps, "requests" in sys.modules, stores.generations().loaded,
              ",".join(off_main) or "-")
        sys.stdout.flush()
        os._exit(0)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT")), "")
    assert line, run.stdout[-2000:] + run.stderr[-2000:]
    _, at_enable, steps, loaded, store_read, off_main = line.split()
    assert at_enable == "-", f"enabling imported {at_enable} (it belongs to the start-up steps)"
    assert int(steps) >= 5, "the start-up work was not split into steps"
    assert loaded == "True" and store_read == "True"
    assert off_main == "-", f"imported off the main thread: {off_main}"
