"""Make sample models with Blender's own exporters (for the demo, the tests and the benchmark).

Needs the `bpy` module. Each function leaves the current file empty again.
"""

from __future__ import annotations

from pathlib import Path

import bpy


def _checker_image(name: str, size: int = 128) -> bpy.types.Image:
    """A packed colour grid image, so exporters write a real texture."""
    image = bpy.data.images.new(name, size, size)
    image.generated_type = "COLOR_GRID"
    image.pack()
    return image


def build_sample_scene(subdivisions: int = 2, textured: bool = True) -> bpy.types.Object:
    """Suzanne (smooth, subdivided, textured) with a child cube: a small textured PBR model with a hierarchy."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_monkey_add()
    monkey = bpy.context.active_object
    monkey.name = "Suzanne"
    bpy.ops.object.shade_smooth()
    if subdivisions:
        monkey.modifiers.new("Subdivision", "SUBSURF").levels = subdivisions
    bpy.ops.mesh.primitive_cube_add(size=0.6, location=(0, 0, -1.4))
    pedestal = bpy.context.active_object
    pedestal.name = "Pedestal"
    pedestal.parent = monkey
    if textured:
        mat = bpy.data.materials.new("Painted")
        mat.use_nodes = True
        tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
        tex.image = _checker_image("colour_grid")
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = 0.45
        monkey.data.materials.append(mat)
        pedestal.data.materials.append(mat)
    return monkey


def make_glb(path: Path, subdivisions: int = 2, textured: bool = True, padding_bytes: int = 0) -> Path:
    """Export the sample scene as GLB; `padding_bytes` appends an unused buffer (big file, cheap import)."""
    build_sample_scene(subdivisions, textured)
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", export_apply=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    if padding_bytes:
        pad_glb(path, padding_bytes)
    return path


def pad_glb(path: Path, extra: int) -> None:
    """Grow a GLB by an unused buffer of `extra` bytes (importers skip it), keeping it valid."""
    import json
    import struct

    data = path.read_bytes()
    json_len = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20 : 20 + json_len])
    rest = data[20 + json_len :]
    bin_chunk = b""
    if rest:
        bin_len = struct.unpack_from("<I", rest, 0)[0]
        bin_chunk = rest[8 : 8 + bin_len]
    extra = (extra + 3) // 4 * 4
    offset = len(bin_chunk)
    bin_chunk += bytes(extra)
    buffers = doc.setdefault("buffers", [{"byteLength": 0}])
    buffers[0]["byteLength"] = len(bin_chunk)
    doc.setdefault("bufferViews", []).append({"buffer": 0, "byteOffset": offset, "byteLength": extra})
    json_bytes = json.dumps(doc, separators=(",", ":")).encode()
    json_bytes += b" " * (-len(json_bytes) % 4)
    total = 12 + 8 + len(json_bytes) + 8 + len(bin_chunk)
    out = struct.pack("<4sII", b"glTF", 2, total)
    out += struct.pack("<I4s", len(json_bytes), b"JSON") + json_bytes
    out += struct.pack("<I4s", len(bin_chunk), b"BIN\x00") + bin_chunk
    path.write_bytes(out)


def export_formats(folder: Path) -> dict[str, Path]:
    """The sample scene in every format this Blender can write: glb, gltf (+bin, textures), fbx, obj, stl, ply, usdc."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    build_sample_scene(subdivisions=1)
    for ob in bpy.data.objects:
        ob.select_set(True)
    out["glb"] = folder / "sample.glb"
    bpy.ops.export_scene.gltf(filepath=str(out["glb"]), export_format="GLB")
    out["gltf"] = folder / "gltf" / "sample.gltf"
    out["gltf"].parent.mkdir(exist_ok=True)
    bpy.ops.export_scene.gltf(filepath=str(out["gltf"]), export_format="GLTF_SEPARATE")
    out["fbx"] = folder / "sample.fbx"
    bpy.ops.export_scene.fbx(filepath=str(out["fbx"]))
    out["obj"] = folder / "obj" / "sample.obj"
    out["obj"].parent.mkdir(exist_ok=True)
    bpy.ops.wm.obj_export(filepath=str(out["obj"]))
    out["stl"] = folder / "sample.stl"
    if hasattr(bpy.ops.wm, "stl_export"):
        bpy.ops.wm.stl_export(filepath=str(out["stl"]))
    out["ply"] = folder / "sample.ply"
    bpy.ops.wm.ply_export(filepath=str(out["ply"]))
    out["usdc"] = folder / "sample.usdc"
    bpy.ops.wm.usd_export(filepath=str(out["usdc"]))
    bpy.ops.wm.read_homefile(use_empty=True)
    return {k: v for k, v in out.items() if v.exists()}
