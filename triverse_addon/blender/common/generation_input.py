"""One generation request built in one place from what Blender holds: the Generate panel's state, the
`triverse.generate` operator's arguments, or a stored generation (Generate Again)."""

from __future__ import annotations

import dataclasses
from typing import Any

import bpy

from ...service.generation_request import GenerationRequest

FIELDS = tuple(f.name for f in dataclasses.fields(GenerationRequest))


def request_from(props: Any, image_path: str | None = None) -> GenerationRequest:
    """The request `props` describe: the panel's state, the operator's arguments or a stored record.

    The panel says Text or Image (`mode`) and Textured or Mesh Only (`output`), and holds the texture size as
    an enum; the operator and a record say it with `image_path`, `mesh_only` and an integer. `image_path`, when
    given, is the file to upload (the one prepared from the panel's image source).
    """
    if hasattr(props, "mode"):  # the panel's state
        image = props.mode == "IMAGE"
        return GenerationRequest(
            prompt="" if image else props.prompt,
            negative_prompt="" if image else props.negative_prompt,
            image_path=(image_path or "") if image else "",
            mesh_only=props.output == "MESH",
            polygon_limit=props.polygon_limit,
            texture_size=int(props.texture_size),
            turbo=props.turbo,
        )
    values = {name: getattr(props, name) for name in FIELDS}
    if image_path is not None:
        values["image_path"] = image_path
    elif values["image_path"]:
        values["image_path"] = bpy.path.abspath(values["image_path"])
    return GenerationRequest(**values)


def operator_arguments(request: GenerationRequest) -> dict[str, Any]:
    """The arguments of `bpy.ops.triverse.generate` for a request (they are named as its fields)."""
    return dataclasses.asdict(request)
