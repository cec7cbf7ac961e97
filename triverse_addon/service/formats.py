"""Model formats: recognise a file from its bytes, read server file names safely, unpack zips safely.

No `bpy` module use.
"""

from __future__ import annotations

import email.message
import email.utils
import json
import os
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import NotAModel, StorageError, UnsafeArchive, UnsupportedFormat, human_size

__all__ = [
    "IMPORTABLE",
    "MODEL_EXTENSIONS",
    "detect_format",
    "extract_zip",
    "filename_from_disposition",
    "find_model",
    "safe_filename",
    "sniff",
]

# Formats Blender has an importer for (which one is decided by the bpy side).
MODEL_EXTENSIONS = ("glb", "gltf", "fbx", "obj", "stl", "ply", "usd", "usda", "usdc", "usdz")
IMPORTABLE = frozenset(MODEL_EXTENSIONS) | {"zip"}
# Preference order when an archive holds several models.
_MODEL_PRIORITY = ("gltf", "glb", "fbx", "usdz", "usd", "usdc", "usda", "obj", "ply", "stl")

HEAD_SIZE = 4096

_ZIP_MAX_FILES = 4096
_ZIP_MAX_BYTES = 4 * 1024**3
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
# C0 and C1 controls, line and paragraph separators, bidi controls (which disguise an extension),
# lone surrogates, and what Windows refuses in a name.
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff<>:"/\\|?*]')


def sniff(head: bytes, size: int, hint: str = "") -> str | None:
    """The model format the bytes show (an extension), or None when they show none.

    `hint` is the extension the server's file name suggests; it only decides between formats
    that bytes alone cannot tell apart (zip vs usdz, the text formats).
    """
    if head.startswith(b"glTF"):
        return "glb"
    if head.startswith(b"PK\x03\x04"):
        return "usdz" if hint == "usdz" else "zip"
    if head.startswith(b"Kaydara FBX Binary"):
        return "fbx"
    if head.startswith(b"PXR-USDC"):
        return "usdc" if hint != "usd" else "usd"
    if head.startswith(b"ply\n") or head.startswith(b"ply\r\n"):
        return "ply"
    if len(head) >= 84 and size == 84 + 50 * int.from_bytes(head[80:84], "little") and size > 84:
        return "stl"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"#usda"):
        return "usda" if hint != "usd" else "usd"
    if text.startswith(b"; FBX"):
        return "fbx"
    if text.startswith(b"{") and _looks_like_gltf_json(text):
        return "gltf"
    if text.startswith(b"solid") and b"facet" in text:
        return "stl"
    if _looks_like_obj(text):
        return "obj"
    return None


def _looks_like_gltf_json(text: bytes) -> bool:
    """A glTF JSON file has a top-level "asset" object with a "version"."""
    if b'"asset"' not in text:
        return False
    return re.search(rb'"asset"\s*:\s*\{[^}]*"version"', text) is not None


def _looks_like_obj(text: bytes) -> bool:
    """Wavefront OBJ: lines of `v x y z` with comments, groups and materials around them."""
    try:
        # Names and comments may be UTF-8 or Latin-1, and the head may end inside a character.
        lines = text.decode("utf-8", errors="replace").splitlines()
    except UnicodeDecodeError:  # pragma: no cover - errors="replace" does not raise
        return False
    keys = {"v", "vt", "vn", "f", "o", "g", "s", "mtllib", "usemtl", "l", "p"}
    words = [line.split(None, 1)[0] for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return bool(words) and "v" in words and all(w in keys for w in words[:50])


def describe_bytes(head: bytes, size: int) -> str:
    """Say what non-model bytes look like, for the error message."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<body" in text or b"<head" in text:
        return "a web page (HTML), probably from a proxy or a login portal"
    if text.startswith((b"{", b"[")):
        try:
            data = json.loads(head.decode("utf-8"))
        except ValueError:
            return "a JSON document"
        if isinstance(data, dict):
            msg = data.get("message") or data.get("detail")
            if isinstance(msg, str) and msg:
                return f'a JSON message ("{msg[:120]}")'
        return "a JSON document"
    if text.startswith(b"<?xml") or text.startswith(b"<error"):
        return "an XML document (a storage server's error)"
    if not head:
        return "an empty file"
    return f"{human_size(size)} of unrecognised data"


def detect_format(path: Path, hint: str = "") -> str:
    """The format of the file at `path`, decided by its bytes first; raise NotAModel if it is none."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(HEAD_SIZE)
    fmt = sniff(head, size, hint)
    if fmt is not None:
        return fmt
    # A name Blender could import (garbage called "x.glb") says nothing about the bytes: not a model, then.
    named = hint if hint and hint not in _NOT_MODELS and hint not in IMPORTABLE and hint.isalnum() else ""
    other = _OTHER_FORMATS.get(head[:8]) or named
    if other and not describe_bytes(head, size).startswith(("a web page", "a JSON", "an XML", "an empty")):
        raise UnsupportedFormat(
            f"Triverse sent a .{other} file, which Blender cannot import through this add-on: nothing was imported."
        )
    raise NotAModel(f"Triverse sent {describe_bytes(head, size)} instead of a 3D model: nothing was imported.")


# Recognisable 3D files Blender has no importer for here (by magic), and extensions that are not models.
_OTHER_FORMATS = {b"BLENDER-": "blend", b"BLENDER_": "blend"}
_NOT_MODELS = {"html", "htm", "json", "xml", "txt", "part", "bin"}


def filename_from_disposition(value: str | None) -> str | None:
    """The file name a `Content-Disposition` header offers (RFC 6266 / 2231), made safe; None if absent."""
    if not value:
        return None
    msg = email.message.Message()
    try:
        msg["content-disposition"] = value
        params = msg.get_params(header="content-disposition") or []
        names = [v for k, v in params[1:] if k.lower() == "filename"]
        # RFC 6266: `filename*` (RFC 2231, a tuple here) wins over the plain fallback, whatever their order.
        raw = next((v for v in names if isinstance(v, tuple)), names[0] if names else None)
        name = email.utils.collapse_rfc2231_value(raw).strip() if raw is not None else None
    except Exception:  # noqa: BLE001 - any malformed header means "no usable name"
        return None
    if not name:
        return None
    safe = safe_filename(str(name))
    return safe or None


def safe_filename(name: str, max_length: int = 120) -> str:
    """Reduce a name from the network to a plain base name: no folders, `..`, control or reserved characters."""
    name = name.replace("\\", "/").split("/")[-1]
    name = _UNSAFE_CHARS.sub("_", name)
    name = name.strip(" .")
    if not name or set(name) <= {"_", "."}:
        return ""
    if len(name) > max_length:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16].rstrip(" .") if dot else ""
        keep = max_length - len(ext) - (1 if ext else 0)
        name = (stem if dot else name)[:keep].rstrip(" .") + ("." + ext if ext else "")
    # After shortening, which can leave "CON.glb"; a reserved name is short, so the prefix always fits.
    if _WINDOWS_RESERVED.match(name):
        name = "_" + name
    return name


def extension_of(name: str | None) -> str:
    """The lower-case extension of a file name, without the dot ("" when none)."""
    if not name or "." not in name:
        return ""
    return name.rsplit(".", 1)[1].lower()


def extract_zip(
    archive: Path, dest: Path, *, max_files: int = _ZIP_MAX_FILES, max_bytes: int = _ZIP_MAX_BYTES
) -> list[Path]:
    """Unpack a zip into `dest`, refusing entries that escape it, links, and oversized contents."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise NotAModel(f"Triverse sent a damaged zip archive ({exc}): nothing was imported.") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > max_files:
            raise UnsafeArchive(f"The archive holds {len(infos)} files (at most {max_files} are accepted).")
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise UnsafeArchive(
                f"The archive would unpack to {human_size(total)} (at most {human_size(max_bytes)} is accepted)."
            )
        root = dest.resolve()
        out: list[Path] = []
        written = 0
        for info in infos:
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            mode = info.external_attr >> 16
            if (
                info.filename.startswith(("/", "\\"))
                or re.match(r"^[A-Za-z]:", info.filename)
                or ".." in parts
                or stat.S_ISLNK(mode)
            ):
                raise UnsafeArchive(
                    f'The archive holds an unsafe entry ("{info.filename[:80]}"): nothing was imported.'
                )
            target = root.joinpath(*[safe_filename(p) or "_" for p in parts])
            if not target.resolve().is_relative_to(root):
                raise UnsafeArchive(
                    f'The archive holds an unsafe entry ("{info.filename[:80]}"): nothing was imported.'
                )
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    # Count what is really written: the header's sizes can lie (zip bombs).
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > max_bytes:
                            raise UnsafeArchive("The archive unpacks to more than it declares: nothing was imported.")
                        dst.write(chunk)
            # The directory can be intact while an entry's data is not (bad CRC, broken deflate stream).
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise NotAModel(f"Triverse sent a damaged zip archive ({exc}): nothing was imported.") from None
            except RuntimeError as exc:  # encrypted, or a compression method Python lacks
                raise UnsupportedFormat(f"The archive cannot be unpacked ({exc}): nothing was imported.") from None
            except OSError as exc:
                raise StorageError(
                    f"Cannot unpack the archive into {dest} ({exc.strerror or exc}): free some disk space "
                    "or choose another library folder in the add-on preferences."
                ) from None
            out.append(target)
        return out


def find_model(files: list[Path]) -> Path:
    """The main model among unpacked files: by format priority, then the shallowest, then by name."""
    candidates = [p for p in files if extension_of(p.name) in MODEL_EXTENSIONS]
    if not candidates:
        names = ", ".join(sorted({extension_of(p.name) or p.name for p in files})[:8]) or "nothing"
        raise UnsupportedFormat(f"The archive holds no 3D model Blender can import (found: {names}).")

    def rank(p: Path) -> tuple[int, int, str]:
        return (_MODEL_PRIORITY.index(extension_of(p.name)), len(p.parts), p.name)

    return min(candidates, key=rank)


def remove_quietly(path: Path | str | None) -> None:
    """Delete a file or folder if it exists; never raise (used on cleanup paths)."""
    if not path:
        return
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass  # gone already, or locked: cleanup must not hide the error being reported
