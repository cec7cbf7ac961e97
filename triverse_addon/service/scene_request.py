"""What a scene tool asks for (texture or remesh a selected object): the request, its checks before any request
is sent, and the variant its model is uploaded as. No `bpy` module use.

The service's pages were read only in part (scene-tools.md): texture-model's option table is documented,
text-to-texture's and model-remesh's are not (their paths and flow names are). Where the documentation is
silent the request sends only what is verified, and says so below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import errors
from .generation_request import MIN_PROMPT, ORDER_ID, POLYGON_RANGE, TEXTURE_SIZES, sniff_image

__all__ = ["MODEL_VARIANTS", "SCENE_FLOWS", "TEXTURING_FLOWS", "SceneRequest"]

SCENE_FLOWS = ("text-to-texture", "texture-model", "model-remesh")
TEXTURING_FLOWS = ("text-to-texture", "texture-model")  # they paint new textures; remeshing rebuilds the mesh
MODEL_VARIANTS = ("geometry", "textured")  # `POST /upload/model?modelVariant=...`
MODEL_VERSION = "v2"  # the only model version documented (texture-model's default)


@dataclass(frozen=True)
class SceneRequest:
    """Texture or remesh one object: `flow` is one of SCENE_FLOWS; the object's model is uploaded separately."""

    flow: str
    prompt: str = ""  # text-to-texture
    image_path: str = ""  # texture-model: the reference image (PNG, JPEG or WebP, sniffed like Generate's)
    polygon_limit: int = 1_000_000  # POLYGON_RANGE
    texture_size: int = 1024  # TEXTURE_SIZES, for the texturing flows; remesh takes none
    source_object: str = ""  # the Blender object's name: kept in My Generations, never sent

    @property
    def flow_name(self) -> str:
        """The service's flow, also the creation's path (`POST /tasks/{flow_name}`)."""
        return self.flow

    @property
    def mode(self) -> str:
        """What moderation may refuse: "image" (texture-model), "text" (text-to-texture), "model" (remesh)."""
        return {"texture-model": "image", "text-to-texture": "text"}.get(self.flow, "model")

    @property
    def texturing(self) -> bool:
        """The flow paints new textures (text-to-texture, texture-model)."""
        return self.flow in TEXTURING_FLOWS

    def model_variant(self, has_textures: bool) -> str:
        """The `modelVariant` the object's model is uploaded as ("geometry" or "textured").

        The documentation says only "geometry or textured" (read as: a bare mesh, or one that carries its
        materials). Texturing replaces the textures, so the model always goes up as geometry (its old
        textures would only be bytes to send and could steer the service). Remeshing keeps the look (whether
        the service bakes textures onto the new mesh is undocumented), so an object that has textures goes up
        as textured, one without as geometry.
        """
        return "textured" if has_textures and not self.texturing else "geometry"

    def validate(self) -> dict[str, str]:
        """Field name -> the reason it is not acceptable (one sentence); empty when all is well."""
        problems: dict[str, str] = {}
        if self.flow not in SCENE_FLOWS:
            problems["flow"] = f"Unknown scene tool {self.flow!r}: use text-to-texture, texture-model or model-remesh."
            return problems
        if self.flow == "text-to-texture" and len(self.prompt.strip()) < MIN_PROMPT:
            problems["prompt"] = f"Describe the texture in at least {MIN_PROMPT} characters."
        low, high = POLYGON_RANGE
        if isinstance(self.polygon_limit, bool) or not low <= self.polygon_limit <= high:
            problems["polygon_limit"] = f"The polygon limit must be between {low:,} and {high:,}."
        if self.texturing and self.texture_size not in TEXTURE_SIZES:
            problems["texture_size"] = "The texture size must be 1024, 2048 or 4096."
        if self.flow == "texture-model":
            try:
                sniff_image(self.image_path)
            except errors.TriverseError as exc:
                problems["image_path"] = str(exc)
        return problems

    def price_params(self) -> dict[str, Any]:
        """The options that change the price (no prompt, no files): what a quote is asked for."""
        params: dict[str, Any] = {"polygon_limit": self.polygon_limit}
        if self.texturing:
            params["texture_size"] = self.texture_size
        return params

    def body(self, model_file: str, image_file: str | None, order_id: str, allow_duplicate: bool) -> dict[str, Any]:
        """The creation's JSON body: `model_file` is the model upload's file_key (or an http(s) URL), `image_file`
        the reference image's for texture-model."""
        if not ORDER_ID.fullmatch(order_id or ""):
            raise ValueError("a creation is never sent without a valid client_order_id")
        if not model_file:
            raise ValueError("a scene tool needs the uploaded model's file_key (or a URL)")
        body: dict[str, Any] = {}
        if self.flow == "texture-model":
            # The one documented table: image_file, model_file, model_version, polygon_limit, texture_size.
            if not image_file:
                raise ValueError("texture-model needs the uploaded image's file_key (or a URL)")
            body.update(image_file=image_file, model_file=model_file, model_version=MODEL_VERSION)
            body.update(polygon_limit=self.polygon_limit, texture_size=self.texture_size)
        elif self.flow == "text-to-texture":
            # Its table was not retrieved: only the fields it shares with texture-model, plus `prompt` (the
            # unofficial client's name, which also has `text_prompt`). Nothing else is guessed.
            body.update(prompt=self.prompt.strip(), model_file=model_file, model_version=MODEL_VERSION)
            body.update(polygon_limit=self.polygon_limit, texture_size=self.texture_size)
        elif self.flow == "model-remesh":
            # Undocumented beyond its path: only `model_file` and `polygon_limit` (the unofficial client's
            # fields) are sent; no `texture_size`, no `output_format` (GLB, the download's default, is wanted),
            # no quad option. Sending an unknown option risks a 1004 refusal; leaving one out means its default.
            body.update(model_file=model_file, polygon_limit=self.polygon_limit)
        else:
            raise ValueError(f"unknown scene flow {self.flow!r}")
        # The idempotency pair is documented "on every task endpoint read"; a duplicate only when asked.
        body["client_order_id"] = order_id
        if allow_duplicate:
            body["allow_duplicate"] = True
        return body
