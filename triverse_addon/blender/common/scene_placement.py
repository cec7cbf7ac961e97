"""A textured or remeshed model put in its original's place: the original's world matrix, parent and collections;
the original hidden (viewport and renders), never deleted; each remembering the other, so that Restore Original
and the swap back work after saving and reopening the file. Main thread only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import bpy

from .scene_import import FLOW, PROMPT, import_asset

if TYPE_CHECKING:
    from ...service.obtain import Asset
    from .scene_import import Imported

SOURCE = "triverse_source"  # on a result's root: the object it was made from (an ID property: survives renames)
RESULT = "triverse_result"  # on an original: its latest result's root
SUFFIX = {"text-to-texture": "textured", "texture-model": "textured", "model-remesh": "remeshed"}
DONE = {"text-to-texture": "Textured", "texture-model": "Textured", "model-remesh": "Remeshed"}


@dataclass(frozen=True)
class Topology:
    """Vertex and face counts of what the user sees (modifiers applied)."""

    vertices: int
    faces: int

    def text(self) -> str:
        """ "1,204 vertices, 2,400 faces"."""
        return f"{self.vertices:,} vertices, {self.faces:,} faces"


def topology(objects: list[bpy.types.Object], context: bpy.types.Context) -> Topology:
    """The counts of the meshes of `objects` as evaluated (what is drawn)."""
    depsgraph = context.evaluated_depsgraph_get()
    vertices = faces = 0
    for ob in objects:
        if ob.type != "MESH":
            continue
        evaluated = ob.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        try:
            vertices += len(mesh.vertices)
            faces += len(mesh.polygons)
        finally:
            evaluated.to_mesh_clear()
    return Topology(vertices, faces)


def descendants(root: bpy.types.Object) -> list[bpy.types.Object]:
    """The root and every object under it."""
    return [root, *root.children_recursive]


def place(imported: Imported, original: bpy.types.Object, flow: str, prompt: str = "") -> bpy.types.Object:
    """Move an imported model into `original`'s place and hide the original; the result's root.

    The imported root keeps its own transform relative to the original (the service answers the model in the
    object's own space: usually identity), so its world matrix becomes the original's times it.
    """
    bpy.context.view_layer.update()  # the imported matrices, evaluated before they are read
    root = imported.root
    chosen = set(imported.objects)
    for ob in imported.objects:  # a model of several top-level objects moves as one, under its main root
        if ob is not root and ob.parent not in chosen:
            world = ob.matrix_world.copy()
            ob.parent = root
            ob.matrix_world = world
    inner = root.matrix_world.copy()
    for ob in imported.objects:  # the original's collections instead of the import's new one
        for collection in list(ob.users_collection):
            collection.objects.unlink(ob)
        for collection in original.users_collection:
            collection.objects.link(ob)
    if not imported.collection.objects and not imported.collection.children:
        bpy.data.collections.remove(imported.collection)
    root.parent = original.parent
    root.parent_type = original.parent_type
    if original.parent_type == "BONE":
        root.parent_bone = original.parent_bone
    root.matrix_world = original.matrix_world @ inner
    root.name = f"{original.name} {SUFFIX.get(flow, 'result')}"
    root[SOURCE] = original
    root[FLOW] = flow
    if prompt:
        root[PROMPT] = prompt
    original[RESULT] = root
    show(original, False)
    return root


def show(ob: bpy.types.Object, visible: bool, with_children: bool = False) -> None:
    """Show or hide an object (and its children) in the viewport and in renders."""
    for each in descendants(ob) if with_children else [ob]:
        each.hide_render = not visible
        try:
            each.hide_set(not visible)
        except RuntimeError:  # not in the current view layer: its render visibility is what is kept
            pass


def source_of(ob: bpy.types.Object | None) -> tuple[bpy.types.Object, bpy.types.Object] | None:
    """(result root, original) for an object of a result or an original that has one; None otherwise."""
    while ob is not None:
        source = ob.get(SOURCE)
        if isinstance(source, bpy.types.Object):
            return ob, source
        result = ob.get(RESULT)
        if isinstance(result, bpy.types.Object):
            return result, ob
        ob = ob.parent
    return None


def swap(context: bpy.types.Context, ob: bpy.types.Object | None) -> str:
    """Show the other version of `ob` (the original if the result shows, else the result); what is shown now.

    Raises LookupError when `ob` is neither a result nor an original with a result.
    """
    pair = source_of(ob)
    if pair is None:
        raise LookupError("The active object is not a Triverse result, nor the original of one.")
    result, original = pair
    result_shown = not result.hide_get() if result.name in context.view_layer.objects else not result.hide_render
    show(result, not result_shown, with_children=True)
    show(original, result_shown)
    shown = original if result_shown else result
    if shown.name in context.view_layer.objects:
        for each in context.view_layer.objects:
            each.select_set(False)
        shown.select_set(True)
        context.view_layer.objects.active = shown
    return "original" if result_shown else "result"


def place_asset(context: bpy.types.Context, asset: Asset, names: list[str], flow: str, prompt: str) -> list[str]:
    """Import the model once for each object still in the file and put it in that object's place; the lines to
    report (the topology before and after: a rigged or UV-mapped mesh cares when it changed)."""
    lines = []
    for name in names:
        original = bpy.data.objects.get(name)
        if original is None:
            lines.append(f"{name} is gone: the result of task {asset.task_uuid[:8]} was not placed.")
            continue
        before = topology([original], context)
        imported = import_asset(context, asset, root_properties={FLOW: flow, PROMPT: prompt})
        root = place(imported, original, flow, prompt)
        after = topology(descendants(root), context)
        changed = (before.vertices, before.faces) != (after.vertices, after.faces)
        note = (
            " (the topology changed: UVs, rigs and shape keys made for the old mesh no longer fit)" if changed else ""
        )
        lines.append(f"{DONE[flow]} {name}: {before.text()} before, {after.text()} after{note if changed else ''}.")
    return lines
