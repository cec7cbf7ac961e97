"""Headless tier: real Blender (the `bpy` module), the extension loaded as Blender loads extensions.

The user folder is isolated before `bpy` is imported; the package is staged (symlinks: live source)
into a custom extensions repository and enabled as `bl_ext.dev.triverse`.
"""

from __future__ import annotations

import glob
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_USER = tempfile.mkdtemp(prefix="triverse-blender-user-")
# The add-on's temporary files go to a folder of this session, so that "nothing left behind" can be
# checked exactly, whatever else runs on the machine.
tempfile.tempdir = tempfile.mkdtemp(prefix="triverse-tests-tmp-")
os.environ["BLENDER_USER_RESOURCES"] = _USER  # before `import bpy`, or prefs land in ~/.config
os.environ.pop("TRIVERSE_API_KEY", None)
os.environ.pop("TRIVERSE_API_URL", None)

# isort: off
import bpy  # first: it puts Blender's own modules (addon_utils) on the path
import addon_utils
# isort: on

import build  # scripts/build.py: the same staging the zip build uses
import sample_asset  # scripts/sample_asset.py: models made by Blender's exporters
from standin_server import StandinServer

MODULE = "bl_ext.dev.triverse"
SHARED_ASSETS = Path(__file__).resolve().parents[3] / "shared" / "assets"  # beside the clone, when present
REPO_DIR = Path(_USER) / "dev-repo"
_exit_status = 0


def _enable_extension() -> None:
    build.stage(REPO_DIR, link=True)
    prefs = bpy.context.preferences
    if not any(repo.module == "dev" for repo in prefs.extensions.repos):
        prefs.extensions.repos.new(name="Dev", module="dev", custom_directory=str(REPO_DIR), source="USER")
    addon_utils.enable(MODULE, default_set=True)
    assert MODULE in prefs.addons, f"{MODULE} did not enable"


_enable_extension()
bpy.context.preferences.system.use_online_access = True


def library_settled() -> None:
    """Wait until the library has recorded what was imported (it hashes after the import, on a helper)."""
    importlib.import_module(MODULE + ".service.library").wait_for_pending(10)


def addon_prefs():
    """The add-on's preferences, looked up by the extension's module name."""
    return bpy.context.preferences.addons[MODULE].preferences


@pytest.fixture(scope="session")
def server() -> Iterator[StandinServer]:
    """The local stand-in for the service (API on 127.0.0.1, signed assets on 127.0.0.2)."""
    with StandinServer(api_key="test-key") as srv:
        yield srv


@pytest.fixture()
def standin(server: StandinServer, tmp_path: Path) -> Iterator[StandinServer]:
    """The stand-in with no failure installed, and the add-on pointed at it with the right key."""
    server.clear_failures()
    server.requests.clear()
    prefs = addon_prefs()
    prefs.api_key = "test-key"
    prefs.base_url = server.base_url
    prefs.library_dir = str(tmp_path / "library")
    prefs.use_library = True
    # Off here: each asset's preview is a background process (about 1 s of CPU). tests/blender/test_assets.py
    # turns it on; the window and binary tiers run with it on, as users do.
    prefs.use_asset_library = False
    bpy.context.preferences.system.use_online_access = True
    yield server
    prefs = addon_prefs()  # again: a test that disabled and enabled the add-on left the first one dangling
    prefs.api_key = ""
    prefs.base_url = ""
    prefs.library_dir = ""


@pytest.fixture(autouse=True)
def empty_scene() -> Iterator[None]:
    """Each test starts from an empty file (read_homefile keeps the extension and its preferences)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    yield


def temp_dirs() -> set[str]:
    """Temporary folders the add-on made (previews excepted): none may stay after an import."""
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "triverse-*"))) - {
        os.path.join(tempfile.gettempdir(), "triverse-previews")
    }


def scene_counts() -> dict[str, int]:
    """What a user would count: objects, meshes, materials, images, vertices, collections."""
    return {
        "objects": len(bpy.data.objects),
        "meshes": len(bpy.data.meshes),
        "materials": len(bpy.data.materials),
        "images": len(bpy.data.images),
        "vertices": sum(len(m.vertices) for m in bpy.data.meshes),
        "collections": len(bpy.data.collections),
    }


@pytest.fixture(scope="session")
def sample_glb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A textured GLB made by Blender's exporter for this session."""
    return sample_asset.make_glb(tmp_path_factory.mktemp("assets") / "sample.glb")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # bpy 4.2 can crash at interpreter exit (exit code 139) once a class stayed registered
    # (seen after a glTF export): leave with pytest's own status instead.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
