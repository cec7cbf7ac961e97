"""The selected objects as the service gets them: checked before any request, grouped (objects sharing one mesh
and no modifiers go up once), and each group's mesh as the user sees it (modifiers applied) written as a GLB in
the object's own space (no object or parent transform baked in) with Blender's own glTF exporter. Main thread."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from ...service import errors
from ..common.scene_placement import Topology, topology


@dataclass
class Group:
    """Objects that get one task: one object, or several sharing one mesh without modifiers (instances)."""

    objects: list[bpy.types.Object]

    @property
    def first(self) -> bpy.types.Object:
        """The object the group is named after."""
        return self.objects[0]


@dataclass
class Exported:
    """A group's model written for upload, in a private folder (`cleanup()` removes it)."""

    group: Group
    path: Path
    has_textures: bool
    before: Topology
    names: list[str] = field(default_factory=list)  # the group's object names (the objects may be gone later)

    def cleanup(self) -> None:
        """Remove the temporary export (never anything else)."""
        shutil.rmtree(self.path.parent, ignore_errors=True)


def selected_groups(context: bpy.types.Context) -> list[Group]:
    """The selected mesh objects in groups; `errors.InvalidParameters` with the reason when there are none or one
    cannot be used (linked from another file)."""
    selected = list(context.selected_objects)
    if not selected:
        raise errors.InvalidParameters("Nothing is selected: select the mesh objects to texture or remesh.")
    return groups_of(selected)


def groups_of(objects: list[bpy.types.Object], among: str = "the selected objects") -> list[Group]:
    """The mesh objects of `objects` in groups (objects sharing one mesh without modifiers together), in the order
    given; `errors.InvalidParameters` when there is no mesh among them (`among` names them in the reason) or one is
    linked from another file."""
    meshes = [ob for ob in objects if ob.type == "MESH"]
    if not meshes:
        kinds = ", ".join(sorted({ob.type.lower() for ob in objects})) or "nothing"
        raise errors.InvalidParameters(f"No mesh among {among} ({kinds}): select a mesh object.")
    linked = [ob.name for ob in meshes if ob.library is not None or ob.data.library is not None]
    if linked:
        raise errors.InvalidParameters(
            f"{', '.join(linked[:3])} {'is' if len(linked) == 1 else 'are'} linked from another file and cannot be "
            "changed here: make it local (Object > Relations > Make Local), or open its file."
        )
    groups: dict[object, Group] = {}
    for ob in meshes:
        # Objects sharing a mesh without modifiers look alike: the service sees that mesh once.
        key: object = ob.data.as_pointer() if not ob.modifiers else ob.as_pointer()
        groups.setdefault(key, Group([])).objects.append(ob)
    return list(groups.values())


def has_textures(ob: bpy.types.Object) -> bool:
    """Whether a material of the object uses an image texture."""
    for slot in ob.material_slots:
        tree = slot.material.node_tree if slot.material is not None else None
        if tree is not None and any(node.type == "TEX_IMAGE" and node.image is not None for node in tree.nodes):
            return True
    return False


def leave_edit_mode(context: bpy.types.Context) -> None:
    """Edit Mode holds the edits outside the mesh: leave it so that they are what goes up."""
    if context.mode != "OBJECT" and context.view_layer.objects.active is not None:
        bpy.ops.object.mode_set(mode="OBJECT")


def export_group(context: bpy.types.Context, group: Group, with_materials: bool) -> Exported:
    """Write the group's evaluated mesh, in object space, as a GLB in a new private folder."""
    source = group.first
    depsgraph = context.evaluated_depsgraph_get()
    mesh = bpy.data.meshes.new_from_object(
        source.evaluated_get(depsgraph), preserve_all_data_layers=True, depsgraph=depsgraph
    )
    temp = bpy.data.objects.new(source.name, mesh)  # at the origin, unparented: the object's own space
    folder = Path(tempfile.mkdtemp(prefix="triverse-export-"))
    path = folder / f"{_safe(source.name)}.glb"
    view_layer = context.view_layer
    selected = [ob for ob in view_layer.objects if ob.select_get()]
    active = view_layer.objects.active
    context.scene.collection.objects.link(temp)
    try:
        for ob in selected:
            ob.select_set(False)
        temp.select_set(True)
        view_layer.objects.active = temp
        options = {"export_format": "GLB", "use_selection": True, "export_apply": False}
        options["export_materials"] = "EXPORT" if with_materials else "NONE"
        result = _exporter()(filepath=str(path), **_known(options))
        if "FINISHED" not in result or not path.is_file():
            raise errors.StorageError(f"Blender's glTF exporter could not write {source.name}: nothing was sent.")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        bpy.data.objects.remove(temp)
        bpy.data.meshes.remove(mesh)
        for ob in selected:
            ob.select_set(True)
        view_layer.objects.active = active
    before = topology([source], context)
    return Exported(group, path, has_textures(source), before, [ob.name for ob in group.objects])


def _known(options: dict[str, object]) -> dict[str, object]:
    """The exporter's options this Blender knows (they are renamed between versions)."""
    props = _exporter().get_rna_type().properties
    return {name: value for name, value in options.items() if name in props}


def _exporter() -> Any:
    """Blender's glTF exporter (an operator; the stubs type it as a plain function)."""
    return bpy.ops.export_scene.gltf


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "model"
