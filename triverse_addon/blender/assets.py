"""The Triverse asset library: a Blender asset library (Preferences > File Paths > Asset Libraries) holding every
model imported or generated, one small .blend per task, in a catalog per kind.

After an import, the model's collection is written on the main thread (`bpy.data.libraries.write`, marked as an
asset only for the time of the write: the open file keeps no asset mark) to the folder's `.incoming/`; the
`common.asset_store` worker then gives it its preview (the service's, else a render, both in a background
Blender) and renames it into the folder. With a window the write waits for a one-shot timer, so that the import
operator returns first; in background mode (scripts, the `bpy` module), where timers never run, it happens right
after the import. Scripts that quit at once call `common.asset_store.wait()` to let previews finish.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import bpy
from mathutils import Vector

from ..service import asset_catalog
from .common import addon, asset_store, startup, stores
from .common.scene_import import AFTER_IMPORT, FLOW, PROMPT, TAG, Imported

log = logging.getLogger(__name__)

LIBRARY_NAME = "Triverse"
_PENDING: list[Imported] = []

# Run by a background Blender (argv after "--": the asset .blend, the output, a picture or ""): give the one
# marked collection its preview from the picture, else a render; save a copy. Exit 0 only with a preview (a
# blank render is none: Blender then shows the asset's type icon).
PREVIEW_SCRIPT = r"""
import os, sys
src, out, picture = sys.argv[sys.argv.index("--") + 1:][:3]
code = 1
try:
    import bpy
    bpy.ops.wm.open_mainfile(filepath=src, load_ui=False)
    coll = next(c for c in bpy.data.collections if c.asset_data is not None)
    done = False
    if picture:
        try:
            image = bpy.data.images.load(picture)
            w, h = image.size
            if w and h:
                scale = min(1.0, 256.0 / max(w, h))
                if scale < 1.0:
                    image.scale(max(1, round(w * scale)), max(1, round(h * scale)))
                w, h = image.size
                pixels = [0.0] * (w * h * 4)
                image.pixels.foreach_get(pixels)
                preview = coll.preview_ensure()
                preview.image_size = (w, h)
                preview.image_pixels_float.foreach_set(pixels)
                done = True
            bpy.data.images.remove(image)
        except Exception as exc:
            print("picture not usable:", exc, file=sys.stderr)
    if not done:
        coll.asset_generate_preview()  # needs a GPU context: without one it is blank, and then not kept
        preview = coll.preview
        done = bool(preview is not None and preview.image_size[0] and max(preview.image_pixels_float[:]) > 0.0)
    if done:
        bpy.ops.wm.save_as_mainfile(filepath=out, copy=True, relative_remap=False)
        code = 0
    else:
        code = 2
except Exception as exc:
    print("preview failed:", exc, file=sys.stderr)
sys.stdout.flush()
sys.stderr.flush()
if "bpy" in sys.modules and sys.modules["bpy"].app.binary_path:
    sys.exit(code)  # Blender itself: a normal exit removes its session's temporary folder
os._exit(code)  # the bpy module: 4.2 may crash at interpreter exit
"""


def preview_command() -> list[str]:
    """A background Blender running PREVIEW_SCRIPT (the `bpy` module's Python when this is the module)."""
    if bpy.app.binary_path:
        return [bpy.app.binary_path, "-b", "--factory-startup", "-noaudio", "--python-expr", PREVIEW_SCRIPT, "--"]
    return [sys.executable, "-c", PREVIEW_SCRIPT, "--"]


# ---- the library's entry in Blender's preferences -------------------------------------------------------------


def _entry() -> Any:
    for library in bpy.context.preferences.filepaths.asset_libraries:
        if library.name == LIBRARY_NAME:
            return library
    return None


def ensure_registered(prefs: Any = None) -> Any:
    """Register (or re-point) the Triverse asset library at the folder; the folder is created. Returns it."""
    path = asset_store.folder(prefs)
    path.mkdir(parents=True, exist_ok=True)
    asset_catalog.ensure_catalogs(path)
    entry = _entry()
    if entry is None:
        libraries = bpy.context.preferences.filepaths.asset_libraries
        if hasattr(libraries, "new"):  # Blender 4.2+
            entry = libraries.new(name=LIBRARY_NAME, directory=str(path))
        else:  # Blender 3.x: only the operator adds one (the last of the list)
            bpy.ops.preferences.asset_library_add(directory=str(path))
            entry = libraries[-1]
            entry.name = LIBRARY_NAME
    if Path(bpy.path.abspath(entry.path)) != path:
        entry.path = str(path)
    return entry


def remove_registered() -> None:
    """Remove the Triverse asset library from Blender's preferences (its folder and files stay)."""
    libraries = bpy.context.preferences.filepaths.asset_libraries
    for index, library in reversed(list(enumerate(libraries))):
        if library.name != LIBRARY_NAME:
            continue
        if hasattr(libraries, "remove"):
            libraries.remove(library)
        else:
            bpy.ops.preferences.asset_library_remove(index=index)


def on_preference(name: str, context: bpy.types.Context) -> None:
    """Follow the preferences: on/off registers/removes the library; a new folder re-points it."""
    if name not in ("use_asset_library", "asset_library_dir"):
        return
    prefs = addon.addon_preferences(context)
    if asset_store.enabled(prefs):
        ensure_registered(prefs)
    else:
        remove_registered()


# ---- writing a model's asset ------------------------------------------------------------------------------------


def on_import(imported: Imported) -> None:
    """AFTER_IMPORT: write the model's asset after the operator returns (at once in background mode)."""
    if not asset_store.enabled():
        return
    if bpy.app.background:
        write_asset(imported)
        return
    _PENDING.append(imported)
    if not bpy.app.timers.is_registered(flush):
        bpy.app.timers.register(flush, first_interval=0.0)


def flush() -> None:
    """Write every asset waiting for the main thread (a one-shot timer's body)."""
    while _PENDING:
        imported = _PENDING.pop(0)
        try:
            write_asset(imported)
        except Exception:  # an asset never undoes an import, nor stops the next one
            log.exception("Writing the asset of task %s", imported.task_uuid[:8])


def write_asset(imported: Imported) -> Path | None:
    """Write the model's asset .blend (main thread) and have the worker finish it; None when skipped."""
    try:
        collection = imported.collection
        collection.name  # noqa: B018 - raises ReferenceError when the user removed it meanwhile
    except ReferenceError:
        return None
    folder = asset_store.folder()
    if _entry() is None:  # without a window the start-up steps do not run: the first asset registers it
        start()
    final = asset_catalog.asset_file(folder, imported.task_uuid)
    if final.exists():
        return final  # the task's model is an asset already (a re-import)
    props = imported.properties
    flow, prompt = props.get(FLOW, ""), props.get(PROMPT, "")
    catalog = asset_catalog.catalog_for_flow(flow)
    catalog_ids = asset_catalog.ensure_catalogs(folder)
    part = asset_catalog.incoming(folder) / f"{imported.task_uuid}.blend"
    if part.exists():  # being finished by the worker (the task imported again meanwhile): one asset, one job;
        return final  # a second write would overwrite the file the first job reads and the first would remove it
    _write_marked(collection, imported, catalog_ids[catalog], prompt, flow, part)
    picture, fetch = _picture_source(imported, folder)
    job = asset_store.Finish(imported.task_uuid, part, final, preview_command(), picture, fetch)
    if fetch is not None and bpy.app.background:  # scripts: nothing of an import goes on the network later
        job.picture, job.fetch, job.owns_picture = fetch(), None, True
    asset_store.submit(job)
    return final


def _write_marked(
    collection: bpy.types.Collection, imported: Imported, catalog_id: str, prompt: str, flow: str, part: Path
) -> None:
    """Mark the collection, write it alone (with what it uses) to `part`, and take the mark off again."""
    offset, fake_user = Vector(collection.instance_offset), collection.use_fake_user
    collection[TAG] = imported.task_uuid
    collection.instance_offset = _base_of(imported.objects)  # a dropped instance stands on its base
    collection.asset_mark()
    try:
        data = collection.asset_data
        data.catalog_id = catalog_id
        data.description = prompt or f"Triverse task {imported.task_uuid}"
        for tag in asset_catalog.tags_for(flow, prompt, imported.format):
            data.tags.new(tag, skip_if_exists=True)
        if hasattr(data, "author"):
            data.author = "Triverse"
        bpy.data.libraries.write(str(part), {collection}, fake_user=True, path_remap="ABSOLUTE")
    finally:
        collection.asset_clear()
        collection.instance_offset = offset
        collection.use_fake_user = fake_user


def _base_of(objects: list[bpy.types.Object]) -> Vector:
    """The centre of the model's bounding box at its lowest point, in world space."""
    corners = []
    for ob in objects:
        try:
            corners.extend(ob.matrix_world @ Vector(corner) for corner in ob.bound_box)
        except ReferenceError:
            continue
    if not corners:
        return Vector((0.0, 0.0, 0.0))
    low = Vector((min(c.x for c in corners), min(c.y for c in corners), min(c.z for c in corners)))
    high = Vector((max(c.x for c in corners), max(c.y for c in corners), max(c.z for c in corners)))
    return Vector(((low.x + high.x) / 2, (low.y + high.y) / 2, low.z))


def _picture_source(imported: Imported, folder: Path) -> tuple[Path | None, Any]:
    """(the service's preview already on disk, else how to fetch it, or None for neither: a model imported from
    the library asks the network for nothing, as its import did not)."""
    task_uuid = imported.task_uuid
    record = stores.generations().get(task_uuid)
    if record is not None and record.preview_file and Path(record.preview_file).is_file():
        return Path(record.preview_file), None
    settings = addon.get_settings()
    if imported.from_library or not settings.api_key or not addon.online_access():
        return None, None
    from ..service.api import TriverseClient  # imported here, on the main thread: the worker imports nothing
    from ..service.obtain import fetch_preview

    client = TriverseClient(settings, online_access=True)
    dest = asset_catalog.incoming(folder)

    def fetch() -> Path | None:  # the worker thread: network only, no bpy
        with client:
            return fetch_preview(client, task_uuid, dest)

    return None, fetch


# ---- the operator and the preferences' section --------------------------------------------------------------


class TRIVERSE_OT_asset_library_clear(bpy.types.Operator):
    """Delete every model of the Triverse asset library (the models stay in your scenes)"""

    bl_idname = "triverse.asset_library_clear"
    bl_label = "Clear Asset Library"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Ask first."""
        return context.window_manager.invoke_confirm(self, event)  # type: ignore[no-any-return]

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Remove every asset .blend (the catalogs stay)."""
        count = asset_store.clear()
        self.report({"INFO"}, f"Removed {count} assets from the Triverse asset library.")
        return {"FINISHED"}


def draw_section(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The asset library's box in the preferences."""
    prefs = addon.addon_preferences(context)
    if prefs is None:
        return
    box = layout.box()
    box.prop(prefs, "use_asset_library")
    sub = box.column()
    sub.active = prefs.use_asset_library
    sub.prop(prefs, "asset_library_dir")
    sub.label(text=f"In effect: {asset_store.folder(prefs)}", icon="ASSET_MANAGER")
    sub.operator(TRIVERSE_OT_asset_library_clear.bl_idname, icon="TRASH")


_register_classes, _unregister_classes = addon.classes_registration((TRIVERSE_OT_asset_library_clear,))


def register() -> None:
    """The operator, the import hook, the preferences' section; the library registered when it is on."""
    _register_classes()
    AFTER_IMPORT.append(on_import)
    addon.PREFERENCE_CHANGED.append(on_preference)
    addon.PREFERENCE_SECTIONS["end"].append(draw_section)
    startup.LATER.append(("asset library", start))  # after Blender's start: the folder, its entry, old files


def start() -> None:
    """The library's folder and entry, and files a crash left half-written (a start-up step, or the first asset)."""
    try:
        if asset_store.enabled():
            ensure_entry()
        asset_catalog.remove_stale_partials(asset_store.folder())
    except Exception as exc:  # noqa: BLE001 - an unwritable folder never stops the add-on: said once, quietly
        log.warning("The Triverse asset library is not available: %s", exc)


def ensure_entry() -> None:
    """Register the library unless it is; Blender 3.x without a window has no use for it (and only an operator,
    which needs one, adds it there)."""
    if hasattr(bpy.context.preferences.filepaths.asset_libraries, "new") or not bpy.app.background:
        ensure_registered()


def unregister() -> None:
    """Remove what register() added, the library's entry too (its files stay, and come back on enable)."""
    asset_store.stop()
    _PENDING.clear()
    if bpy.app.timers.is_registered(flush):
        bpy.app.timers.unregister(flush)
    if ("asset library", start) in startup.LATER:
        startup.LATER.remove(("asset library", start))
    remove_registered()
    addon.PREFERENCE_SECTIONS["end"].remove(draw_section)
    addon.PREFERENCE_CHANGED.remove(on_preference)
    AFTER_IMPORT.remove(on_import)
    _unregister_classes()
