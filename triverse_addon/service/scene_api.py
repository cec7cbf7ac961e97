"""Scene tool endpoints: the model upload and the creation of a texturing or remeshing task, charged once.
No `bpy` module use.

- `upload_model()` sends an object's model (`POST /upload/model?modelVariant=...`) and answers its `file_key`,
  waiting the service's upload limit out (10 uploads a minute, images and models together).
- `create_scene()` is `generation_api.create` for a `SceneRequest`: the same order id on every retry, a 409
  on a repeated id answered the same way. The price is `generation_api.quote(client, request)`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import errors
from .api import TriverseClient
from .generation_api import Created, WaitCallback, create, upload_limited
from .http_errors import Asked
from .scene_request import MODEL_VARIANTS, SceneRequest

__all__ = ["MAX_MODEL_BYTES", "MODEL_KINDS", "create_scene", "sniff_model", "upload_model"]

MAX_MODEL_BYTES = 200_000_000  # "at most 200 MB": read as decimal megabytes, the stricter reading
MODEL_KINDS = {"glb": "model/gltf-binary", "obj": "model/obj"}  # the documented examples, .glb and .obj
OBJ_HEAD = 65_536  # bytes of a file read to recognise an OBJ
_OBJ_VERTEX = re.compile(rb"(?m)^v[ \t]")


def sniff_model(path: str | os.PathLike[str]) -> tuple[str, int]:
    """("glb" or "obj", size in bytes) by the file's bytes, checked before anything is sent.

    A missing or unreadable file is `errors.StorageError`, one over MAX_MODEL_BYTES `errors.InvalidParameters`
    (naming both sizes), anything but a binary glTF or an OBJ text `errors.UnsupportedFormat`.
    """
    p = Path(path)
    name = p.name or str(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(OBJ_HEAD)
    except FileNotFoundError:
        raise errors.StorageError(f"The model {name} does not exist (it was not exported).") from None
    except OSError as exc:
        raise errors.StorageError(f"Cannot read the model {name} ({exc.strerror or exc}).") from None
    limit = MAX_MODEL_BYTES  # read now, so that a test can lower it
    if size > limit:
        raise errors.InvalidParameters(
            f"The model {name} is {errors.human_size(size)}, larger than Triverse accepts "
            f"({errors.human_size(limit)}): simplify the object, or remesh it lower first."
        )
    if head.startswith(b"glTF"):
        return "glb", size
    if b"\0" not in head and _OBJ_VERTEX.search(head):
        return "obj", size
    raise errors.UnsupportedFormat(f"{name} is not a GLB or OBJ model: Triverse accepts only those.")


def upload_model(
    client: TriverseClient, path: str | os.PathLike[str], variant: str, on_wait: WaitCallback | None = None
) -> str:
    """Upload an object's model (`POST /upload/model`, field `file`, query `modelVariant`) and answer its file_key.

    Checked before anything is sent (`sniff_model`). Uploads are limited to 10 a minute (images and models
    together): a 429 waits the service's Retry-After (capped at a minute and a margin) and sends again, up
    to `generation_api.UPLOAD_LIMIT_ATTEMPTS` times, `on_wait(seconds)` told before each such wait, so a
    batch of many objects never fails for the limit; a cancel interrupts the wait. An upload creates nothing
    that is charged, so resending it is harmless.
    """
    if variant not in MODEL_VARIANTS:
        raise ValueError(f"modelVariant must be one of {MODEL_VARIANTS}, not {variant!r}")
    kind, _ = sniff_model(path)
    p = Path(path)
    asked = Asked(action="model upload", subject="model")

    def send() -> dict[str, Any]:
        return client.post_file(
            "/upload/model", p, asked, content_type=MODEL_KINDS[kind], params={"modelVariant": variant}
        )

    try:
        data = upload_limited(client, send, on_wait)
    except errors.UnsupportedImage as exc:  # code 2004 is told in an image's words: this was a model
        raise errors.UnsupportedFormat(
            f"Triverse cannot use the model {p.name}: export it as GLB or OBJ of at most "
            f"{errors.human_size(MAX_MODEL_BYTES)} ({exc})."
        ) from None
    key = data.get("file_key") or data.get("fileKey")  # the answer is not shown for models: the image's shape
    if not isinstance(key, str) or not key:
        raise errors.UnexpectedResponse("Triverse accepted the model but sent no file_key for it.")
    return key


def create_scene(
    client: TriverseClient,
    req: SceneRequest,
    order_id: str,
    model_file: str,
    image_file: str | None = None,
    allow_duplicate: bool = False,
) -> Created:
    """Create the texturing or remeshing task once (`POST /tasks/{flow}`): `generation_api.create`, charged once.

    `model_file` is the model upload's file_key (or an http(s) URL); `image_file` the reference image's, for
    texture-model (its local file is then no longer checked).
    """
    action = "texturing" if req.texturing else "remesh"
    return create(client, _WithModel(req, model_file), order_id, image_file, allow_duplicate, action=action)


@dataclass(frozen=True)
class _WithModel:
    """A SceneRequest with its uploaded model: the shape `generation_api.create` sends (`Creatable`)."""

    request: SceneRequest
    model_file: str

    @property
    def flow_name(self) -> str:
        return self.request.flow_name

    @property
    def mode(self) -> str:
        return self.request.mode

    def validate(self) -> dict[str, str]:
        return self.request.validate()

    def price_params(self) -> dict[str, Any]:
        return self.request.price_params()

    def body(self, image_file: str | None, order_id: str, allow_duplicate: bool) -> dict[str, Any]:
        return self.request.body(self.model_file, image_file, order_id, allow_duplicate)
