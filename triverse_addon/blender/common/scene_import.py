"""Put a downloaded model into the scene with Blender's own importers; main thread only.

The scene is left exactly as it was when an importer fails: every data-block created during the
attempt (objects, meshes, materials, images, actions, collections...) is removed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import bpy

from ...service import errors
from ...service.generation_request import collection_name

if TYPE_CHECKING:
    from ...service.obtain import Asset

log = logging.getLogger(__name__)

TAG = "triverse_task_uuid"
PROMPT = "triverse_prompt"  # on a generated model's root
FLOW = "triverse_flow"  # on a generated model's root: the service's flow (text-to-model, image-to-mesh...)

# format -> candidate operators (module, name, options), the first one this Blender has wins.
_IMPORTERS: dict[str, tuple[tuple[str, str, dict[str, object]], ...]] = {
    "glb": (("import_scene", "gltf", {}),),
    "gltf": (("import_scene", "gltf", {}),),
    "fbx": (("import_scene", "fbx", {}),),
    "obj": (("wm", "obj_import", {}), ("import_scene", "obj", {})),
    "stl": (("wm", "stl_import", {}), ("import_mesh", "stl", {})),
    "ply": (("wm", "ply_import", {}), ("import_mesh", "ply", {})),
    "usd": (("wm", "usd_import", {}),),
    "usda": (("wm", "usd_import", {}),),
    "usdc": (("wm", "usd_import", {}),),
    "usdz": (("wm", "usd_import", {}),),
}


@dataclass
class Imported:
    """What an import added to the scene."""

    task_uuid: str
    collection: bpy.types.Collection
    objects: list[bpy.types.Object]
    root: bpy.types.Object
    format: str
    size: int
    from_library: bool
    seconds: float
    properties: dict[str, str] = field(default_factory=dict)  # what the root was given (the prompt, the flow)


@dataclass
class Record:
    """One line of the sidebar's "Recent imports"."""

    task_uuid: str
    format: str
    size: int
    from_library: bool
    when: float = field(default_factory=time.time)
    objects: int = 0


RECENT: list[Record] = []  # this Blender session's imports, newest first
RECENT_MAX = 8
# Called after every successful import (main thread) by the features that follow imports (the asset library);
# a failure there is logged, never the import's.
AFTER_IMPORT: list[Callable[[Imported], None]] = []


def importer_for(fmt: str) -> Callable[..., set[str]]:
    """Blender's importer operator for a format, or UnsupportedFormat naming it."""
    for module, name, options in _IMPORTERS.get(fmt, ()):
        op = getattr(getattr(bpy.ops, module), name)
        try:
            op.get_rna_type()
        except (KeyError, AttributeError):
            continue  # this Blender lacks it (removed, or its add-on is off)
        return lambda filepath, _op=op, _opts=options: _op(filepath=filepath, **_opts)
    if fmt in _IMPORTERS:
        raise errors.UnsupportedFormat(
            f"This Blender ({bpy.app.version_string}) has no importer for .{fmt} files: nothing was imported."
        )
    raise errors.UnsupportedFormat(f"Blender cannot import .{fmt} files: nothing was imported.")


def import_asset(
    context: bpy.types.Context,
    asset: Asset,
    *,
    collection_name: str = "",
    root_properties: Mapping[str, str] | None = None,
) -> Imported:
    """Import the asset into a new collection (named after the task by default); tag, select, make the root active.

    `root_properties` are kept as custom properties on the imported root (a generation's prompt).
    """
    started = time.perf_counter()
    run = importer_for(asset.format)
    _leave_edit_modes(context)
    before = _snapshot()
    view_layer = context.view_layer
    previous_collection = view_layer.active_layer_collection
    collection = bpy.data.collections.new(collection_name or f"Triverse {asset.task_uuid[:8]}")
    context.scene.collection.children.link(collection)
    try:
        layer_collection = _find_layer_collection(view_layer.layer_collection, collection)
        if layer_collection is not None:
            view_layer.active_layer_collection = layer_collection
        try:
            result = run(str(asset.path))
        except RuntimeError as exc:  # the importer reported an error
            raise errors.ImportFailed(_importer_message(asset, exc)) from None
        if "FINISHED" not in result:
            raise errors.ImportFailed(_importer_message(asset, None))
        objects = [ob for ob in bpy.data.objects if ob.as_pointer() not in before["objects"]]
        if not objects:
            raise errors.ImportFailed(
                f"The model of task {asset.task_uuid[:8]} holds no objects to import: nothing was added."
            )
    except BaseException:
        _restore_active(view_layer, previous_collection)
        _remove_new_data(before)
        raise
    _restore_active(view_layer, previous_collection)
    root = _collect(context, collection, objects, asset.task_uuid)
    for key, value in (root_properties or {}).items():
        root[key] = value
    imported = Imported(
        asset.task_uuid,
        collection,
        objects,
        root,
        asset.format,
        asset.size,
        asset.from_library,
        time.perf_counter() - started,
        dict(root_properties or {}),
    )
    RECENT.insert(0, Record(asset.task_uuid, asset.format, asset.size, asset.from_library, objects=len(objects)))
    del RECENT[RECENT_MAX:]
    for follow in list(AFTER_IMPORT):
        try:
            follow(imported)
        except Exception:  # what follows an import never undoes it
            log.exception("After importing task %s", asset.task_uuid[:8])
    return imported


def import_generated(
    context: bpy.types.Context, asset: Asset, prompt: str, image_path: str = "", flow: str = ""
) -> Imported:
    """Import a generated model into a collection named after its prompt (or image) and task, the prompt kept."""
    properties = {PROMPT: prompt, TAG: asset.task_uuid}
    if flow:
        properties[FLOW] = flow
    return import_asset(
        context,
        asset,
        collection_name=collection_name(prompt, asset.task_uuid, image_path),
        root_properties=properties,
    )


def objects_of_task(task_uuid: str) -> list[bpy.types.Object]:
    """Objects in this file imported from the task."""
    return [ob for ob in bpy.data.objects if ob.get(TAG) == task_uuid]


def _collect(
    context: bpy.types.Context, collection: bpy.types.Collection, objects: list[bpy.types.Object], task_uuid: str
) -> bpy.types.Object:
    """Move the objects into the task's collection, tag and select them; return the active root."""
    for ob in context.view_layer.objects:
        ob.select_set(False)
    for ob in objects:
        for other in list(ob.users_collection):
            if other != collection:
                other.objects.unlink(ob)
        if collection not in ob.users_collection:
            collection.objects.link(ob)
        ob[TAG] = task_uuid
    for ob in objects:
        ob.select_set(True)
    chosen = set(objects)
    roots = [ob for ob in objects if ob.parent not in chosen]
    # The root with the most descendants stands for the model (glTF scenes may have several roots).
    root = max(roots, key=lambda ob: (len(ob.children_recursive), ob.type == "MESH", ob.name))
    context.view_layer.objects.active = root
    return root


def _leave_edit_modes(context: bpy.types.Context) -> None:
    """Importers need Object Mode; switch from Edit, Sculpt, Pose... first (Blender does so for its own imports)."""
    if context.mode != "OBJECT" and context.view_layer.objects.active is not None:
        bpy.ops.object.mode_set(mode="OBJECT")


def _id_collections() -> list[str]:
    """Names of every `bpy.data` collection of data-blocks."""
    return [p.identifier for p in bpy.types.BlendData.bl_rna.properties if p.type == "COLLECTION"]


def _snapshot() -> dict[str, set[int]]:
    """Which data-blocks exist now, by collection."""
    snap: dict[str, set[int]] = {}
    for name in _id_collections():
        items = getattr(bpy.data, name, None)
        if items is not None:
            snap[name] = {item.as_pointer() for item in items}
    return snap


def _remove_new_data(before: dict[str, set[int]]) -> None:
    """Remove every data-block that did not exist at the snapshot."""
    new = []
    for name, pointers in before.items():
        items = getattr(bpy.data, name, None)
        if items is None or name in ("window_managers", "screens", "workspaces"):
            continue
        new.extend(item for item in items if item.as_pointer() not in pointers)
    if new:
        bpy.data.batch_remove(new)


def _find_layer_collection(
    layer: bpy.types.LayerCollection, collection: bpy.types.Collection
) -> bpy.types.LayerCollection | None:
    if layer.collection == collection:
        return layer
    for child in layer.children:
        found = _find_layer_collection(child, collection)
        if found is not None:
            return found
    return None


def _restore_active(view_layer: bpy.types.ViewLayer, layer_collection: bpy.types.LayerCollection) -> None:
    try:
        view_layer.active_layer_collection = layer_collection
    except (ReferenceError, TypeError):
        pass  # that collection was removed meanwhile; Blender picks the scene collection


def _importer_message(asset: Asset, exc: BaseException | None) -> str:
    detail = ""
    if exc is not None:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[-1] if lines else ""
        detail = detail.removeprefix("Error: ")[:200]
    reason = f" ({detail})" if detail else ""
    return (
        f"Blender's {asset.format.upper()} importer failed on the model of task {asset.task_uuid[:8]}{reason}: "
        "the scene was left as it was."
    )
