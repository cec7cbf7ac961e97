"""What a generation asks for: the request, its checks before any request is sent, the image's kind by its
bytes, and a fresh idempotency key per press. No `bpy` module use."""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import errors

__all__ = [
    "IMAGE_KINDS",
    "MAX_IMAGE_BYTES",
    "MIN_PROMPT",
    "ORDER_ID",
    "POLYGON_RANGE",
    "TEXTURE_SIZES",
    "GenerationRequest",
    "collection_name",
    "new_order_id",
    "sniff_image",
]

MAX_IMAGE_BYTES = 50_000_000  # "at most 50 MB": read as decimal megabytes, the stricter reading
POLYGON_RANGE = (1_000, 1_500_000)
TEXTURE_SIZES = (1024, 2048, 4096)
MIN_PROMPT = 3
IMAGE_KINDS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
PROMPT_IN_NAME = 24  # characters of the prompt in a collection's name
MAX_NAME_BYTES = 63  # Blender's limit for a data-block name
ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the service's rule for a client_order_id


@dataclass(frozen=True)
class GenerationRequest:
    """What the user asked for; `image_path` set means image-to-model (or -mesh), else text-to-model."""

    prompt: str = ""
    negative_prompt: str = ""
    image_path: str = ""
    mesh_only: bool = False
    polygon_limit: int = 1_000_000
    texture_size: int = 1024
    turbo: bool = False

    @property
    def mode(self) -> str:
        """ "image" when an input image is set, else "text"."""
        return "image" if self.image_path else "text"

    @property
    def flow_name(self) -> str:
        """The service's flow: text-to-model, text-to-mesh, image-to-model or image-to-mesh."""
        return f"{self.mode}-to-{'mesh' if self.mesh_only else 'model'}"

    def validate(self) -> dict[str, str]:
        """Field name -> the reason it is not acceptable (one sentence); empty when all is well."""
        problems: dict[str, str] = {}
        if self.mode == "text" and len(self.prompt.strip()) < MIN_PROMPT:
            problems["prompt"] = f"Describe the model in at least {MIN_PROMPT} characters."
        low, high = POLYGON_RANGE
        if not low <= self.polygon_limit <= high:
            problems["polygon_limit"] = f"The polygon limit must be between {low:,} and {high:,}."
        if self.texture_size not in TEXTURE_SIZES:
            problems["texture_size"] = "The texture size must be 1024, 2048 or 4096."
        if self.mode == "image":
            try:
                sniff_image(self.image_path)
            except errors.TriverseError as exc:
                problems["image_path"] = str(exc)
        return problems

    def price_params(self) -> dict[str, Any]:
        """The options that change the price (no prompt, no image): what a quote is asked for."""
        params: dict[str, Any] = {"polygon_limit": self.polygon_limit, "turbo": self.turbo}
        if not self.mesh_only:
            params["texture_size"] = self.texture_size
        return params

    def body(self, image_file: str | None, order_id: str, allow_duplicate: bool) -> dict[str, Any]:
        """The creation's JSON body; `image_file` is the upload's file_key (or an http(s) URL) for image flows."""
        if not ORDER_ID.fullmatch(order_id or ""):
            raise ValueError("a creation is never sent without a valid client_order_id")
        body: dict[str, Any] = {}
        if self.mode == "text":
            body["prompt"] = self.prompt.strip()
            if self.negative_prompt.strip():
                body["negative_prompt"] = self.negative_prompt.strip()
        else:
            if not image_file:
                raise ValueError("an image flow needs the uploaded image's file_key (or a URL)")
            body["image_file"] = image_file
        body["polygon_limit"] = self.polygon_limit
        # The -to-mesh flows' option table was unreadable in the documentation: they make geometry only,
        # so they get text-to-model's options minus the texture ones. Sending an option a flow does not
        # know risks a 1004 refusal; leaving one out only means its default.
        if not self.mesh_only:
            body["texture_size"] = self.texture_size
        body["turbo"] = self.turbo
        body["client_order_id"] = order_id
        if allow_duplicate:
            body["allow_duplicate"] = True
        return body


def new_order_id() -> str:
    """A fresh idempotency key for one Generate press: "blender-" and 24 hex digits."""
    return f"blender-{secrets.token_hex(12)}"


def sniff_image(path: str | os.PathLike[str]) -> str:
    """ "png", "jpeg" or "webp" by the file's first bytes; `errors.UnsupportedImage` for anything else."""
    p = Path(path)
    name = p.name or str(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise errors.UnsupportedImage(f"The image {name} does not exist: choose another file.") from None
    except OSError as exc:
        raise errors.UnsupportedImage(f"Cannot read the image {name} ({exc.strerror or exc}).") from None
    if size > MAX_IMAGE_BYTES:
        raise errors.UnsupportedImage(
            f"The image {name} is {errors.human_size(size)}, larger than Triverse accepts "
            f"({errors.human_size(MAX_IMAGE_BYTES)}): use a smaller image."
        )
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    raise errors.UnsupportedImage(f"{name} is not a PNG, JPEG or WebP image: Triverse accepts only those.")


def collection_name(prompt: str, task_uuid: str, image_path: str = "") -> str:
    """A short, safe name: the prompt's first words (the image's name for image input) and the task's first 8."""
    source = Path(image_path).name if image_path else prompt
    cleaned = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in source)
    words = " ".join(cleaned.split())
    if len(words) > PROMPT_IN_NAME:
        words = words[:PROMPT_IN_NAME].rstrip() + "…"
    tail = f" {task_uuid[:8]}"
    # Blender cuts names at 63 bytes, possibly inside a character: cut by characters instead.
    while words and len((words + tail).encode()) > MAX_NAME_BYTES:
        words = words[:-2].rstrip() + "…"
    return (words or "Triverse") + tail
