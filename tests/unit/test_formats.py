"""Formats are told by their bytes, server file names are made harmless, zips unpack safely (formats.py)."""

from __future__ import annotations

import io
import json
import os
import random
import stat
import struct
import tempfile
import unicodedata
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest
from conftest import zip_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triverse_addon.service import errors, formats
from triverse_addon.service.formats import detect_format, filename_from_disposition, safe_filename, sniff

GLTF_JSON = json.dumps(
    {"asset": {"generator": "Khronos glTF Blender I/O", "version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}]},
    indent=2,
).encode()
OBJ = b"# Blender 4.2\nmtllib cube.mtl\no Cube\nv 1.0 1.0 -1.0\nv 1.0 -1.0 -1.0\nv 1.0 1.0 1.0\nvn 0 1 0\nvt 0 0\ns 0\nusemtl M\nf 1/1/1 2/1/1 3/1/1\n"  # noqa: E501
ASCII_STL = b"solid cube\n  facet normal 0 0 1\n    outer loop\n      vertex 0 0 0\n      vertex 1 0 0\n      vertex 0 1 0\n    endloop\n  endfacet\nendsolid cube\n"  # noqa: E501
PLY = b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nend_header\n" + b"\x00" * 12
USDA = b'#usda 1.0\n(\n    defaultPrim = "World"\n)\n\ndef Xform "World"\n{\n}\n'
USDC = b"PXR-USDC" + b"\x00\x08\x00\x00\x00\x00\x00\x00" + b"\x00" * 64
FBX_BINARY = b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 7400) + b"\x00" * 64
FBX_ASCII = b"; FBX 7.4.0 project file\n; Copyright (C) 1997-2010 Autodesk Inc.\n\nFBXHeaderExtension:  {\n}\n"


def binary_stl(triangles: int, header: bytes = b"binary STL from unit tests") -> bytes:
    """80-byte header, a triangle count, 50 bytes a triangle."""
    return header.ljust(80, b" ")[:80] + struct.pack("<I", triangles) + b"\x01" * (50 * triangles)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- telling formats apart -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "hint", "expected"),
    [
        (GLTF_JSON, "", "gltf"),
        (b"\xef\xbb\xbf\n  " + GLTF_JSON, "", "gltf"),
        (b'{"asset":{"version":"2.0"}}', "glb", "gltf"),  # the bytes win over the name
        (zip_bytes({"a.gltf": GLTF_JSON}), "", "zip"),
        (zip_bytes({"a.gltf": GLTF_JSON}), "zip", "zip"),
        (zip_bytes({"a.usdc": USDC}), "usdz", "usdz"),
        (FBX_BINARY, "", "fbx"),
        (FBX_ASCII, "", "fbx"),
        (PLY, "", "ply"),
        (PLY.replace(b"\n", b"\r\n", 1), "", "ply"),
        (binary_stl(3), "", "stl"),
        (binary_stl(3, header=b"solid exported by a CAD tool"), "", "stl"),  # binary despite "solid"
        (ASCII_STL, "", "stl"),
        (OBJ, "", "obj"),
        (OBJ.replace(b"# Blender 4.2", "# Créé avec Blender — Würfel".encode()), "", "obj"),
        (b"\r\n\r\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "", "obj"),
        (USDC, "", "usdc"),
        (USDC, "usd", "usd"),
        (USDA, "", "usda"),
        (USDA, "usd", "usd"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_sniff_recognises_models(data: bytes, hint: str, expected: str) -> None:
    assert sniff(data[: formats.HEAD_SIZE], len(data), hint) == expected


def test_sniff_glb(glb_factory: Callable[..., bytes]) -> None:
    data = glb_factory(bin_size=100_000)
    assert sniff(data[: formats.HEAD_SIZE], len(data)) == "glb"


def test_detect_format_reads_the_file(tmp_path: Path, glb: bytes) -> None:
    assert detect_format(write(tmp_path / "x.part", glb)) == "glb"
    assert detect_format(write(tmp_path / "y.part", OBJ)) == "obj"
    archive = write(tmp_path / "z.part", zip_bytes({"m.usdc": USDC}))
    assert detect_format(archive, hint="usdz") == "usdz"
    assert detect_format(archive, hint="glb") == "zip"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            b'<!DOCTYPE html>\n<html lang="en"><head><title>Sign in</title></head><body>x</body></html>',
            "web page (HTML)",
        ),
        (b"  <html><body><h1>502 Bad Gateway</h1></body></html>", "web page (HTML)"),
        (b'{"detail": "Not authenticated"}', 'JSON message ("Not authenticated")'),
        (b'{"code": 1006, "message": "Task not found"}', 'JSON message ("Task not found")'),
        (b'[{"a": 1}]', "JSON document"),
        (b'{"truncated": ', "JSON document"),
        (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "XML document"),
        (b"", "empty file"),
        (b"\x00" + random.Random(0).randbytes(4095), "4.1 KB of unrecognised data"),
        (b"hello world, this is text\n", "26 B of unrecognised data"),
    ],
    ids=[
        "html",
        "proxy-html",
        "json-detail",
        "json-message",
        "json-list",
        "json-broken",
        "xml",
        "empty",
        "random",
        "text",
    ],
)
def test_non_models_are_refused_naming_what_came(tmp_path: Path, data: bytes, words: str) -> None:
    path = write(tmp_path / "download.part", data)
    with pytest.raises(errors.NotAModel) as info:
        detect_format(path, hint="glb")
    message = str(info.value)
    assert words in message
    assert "instead of a 3D model" in message and "nothing was imported" in message
    assert "\n" not in message and "<" not in message


@pytest.mark.parametrize(
    ("data", "hint", "named"),
    [
        (b"BLENDER-v402RENDH" + b"\x00" * 200, "", ".blend"),
        (b"BLENDER_V300" + b"\x00" * 200, "glb", ".blend"),
        (b"MM\x00\x00\x02\x00" + b"\x01" * 500, "3ds", ".3ds"),
    ],
)
def test_recognised_but_unsupported_formats_are_named(tmp_path: Path, data: bytes, hint: str, named: str) -> None:
    with pytest.raises(errors.UnsupportedFormat) as info:
        detect_format(write(tmp_path / "a.part", data), hint=hint)
    assert named in str(info.value) and "cannot import" in str(info.value)


@pytest.mark.parametrize("hint", sorted(formats.IMPORTABLE))
def test_garbage_named_like_a_model_is_not_a_model(tmp_path: Path, hint: str) -> None:
    # The name says .glb, the bytes say nothing: "Blender cannot import .glb" would be false.
    with pytest.raises(errors.NotAModel) as info:
        detect_format(write(tmp_path / "a.part", b"\x00" + random.Random(2).randbytes(999)), hint=hint)
    assert "unrecognised data" in str(info.value)


def test_a_gltf_json_without_asset_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(errors.NotAModel):
        detect_format(write(tmp_path / "a.part", b'{"meshes": [], "version": "2.0"}'))


def test_stl_size_formula_needs_the_exact_size() -> None:
    data = binary_stl(3)
    assert sniff(data, len(data) + 1) is None
    assert sniff(binary_stl(0), 84) is None


# -- server file names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("attachment; filename=model.glb", "model.glb"),
        ('attachment; filename="my model.glb"', "my model.glb"),
        ('attachment; filename="92483a80-236c-4889-9a95-4c90bb64dfd8.glb"', "92483a80-236c-4889-9a95-4c90bb64dfd8.glb"),
        ("attachment; filename*=UTF-8''%E2%82%AC%20rates.glb", "€ rates.glb"),
        ("attachment; filename*=utf-8''W%C3%BCrfel.fbx", "Würfel.fbx"),
        ('attachment; filename*0="long"; filename*1="name.glb"', "longname.glb"),
        # RFC 6266 4.3: when both are given, filename* is the one to use.
        ("attachment; filename=\"fallback.glb\"; filename*=UTF-8''W%C3%BCrfel.glb", "Würfel.glb"),
        ("attachment; filename*=UTF-8''W%C3%BCrfel.glb; filename=\"fallback.glb\"", "Würfel.glb"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="..\\\\..\\\\x.glb"', "x.glb"),
        ('attachment; filename="/abs/path.glb"', "path.glb"),
        ('attachment; filename="C:\\\\x.glb"', "x.glb"),
        ('attachment; filename="C:x.glb"', "C_x.glb"),
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
        ('attachment; filename="a\tb\x01c.glb"', "a_b_c.glb"),
        ('attachment; filename="CON"', "_CON"),
        ('attachment; filename="con.glb"', "_con.glb"),
        ('attachment; filename="LPT1.tar.gz"', "_LPT1.tar.gz"),
        ('attachment; filename="model.glb. . "', "model.glb"),
        ('attachment; filename=".hidden.glb"', "hidden.glb"),
    ],
)
def test_filename_from_disposition(header: str, expected: str) -> None:
    assert filename_from_disposition(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "inline",
        "attachment",
        "attachment; filename",
        'attachment; filename=""',
        'attachment; filename=".."',
        'attachment; filename="."',
        'attachment; filename="/"',
        'attachment; filename="../.."',
        "attachment; filename=___",
    ],
)
def test_filename_from_disposition_without_a_usable_name(header: str | None) -> None:
    assert filename_from_disposition(header) is None


def test_very_long_names_keep_their_extension() -> None:
    name = safe_filename("a" * 500 + ".glb")
    assert len(name) == 120 and name.endswith(".glb")
    assert len(safe_filename("b" * 500)) == 120
    assert len(safe_filename("c" * 10 + "." + "x" * 300)) <= 120


def test_truncation_never_makes_a_reserved_name() -> None:
    name = safe_filename("CON" + " " * 200 + ".glb")
    assert name.lower() != "con.glb" and not name.lower().startswith("con.")


def test_bidi_overrides_and_c1_controls_are_replaced() -> None:
    # "evil<RLO>bl.gexe" would display as "evilexe.glb".
    name = safe_filename("evil\u202ebl.g\x85exe")
    assert "\u202e" not in name and "\x85" not in name


UNSAFE_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def assert_safe(name: str) -> None:
    """A plain base name that is harmless on Windows, macOS and Linux."""
    assert name
    assert len(name) <= 120
    assert name not in (".", "..")
    assert not name.startswith((".", " ")) and not name.endswith((".", " "))
    assert not set(name) & set('/\\\x00<>:"|?*')
    assert not any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in name), repr(name)
    assert not set(name) & BIDI, repr(name)
    assert name.split(".")[0].lower() not in RESERVED, name


NASTY = st.text(
    alphabet=st.one_of(
        st.sampled_from(list('./\\:*?"<>| \t\r\n\x00\x7f\x85\u202e\u2028C0NnULlptcom1.glb')),
        st.characters(codec="utf-8"),
    ),
    max_size=300,
)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.one_of(NASTY, st.text(max_size=400)))
def test_safe_filename_fuzz(name: str) -> None:
    result = safe_filename(name)
    if result:
        assert_safe(result)


@settings(max_examples=400, deadline=None, database=None)
@given(
    name=NASTY,
    form=st.sampled_from(['attachment; filename="{}"', "attachment; filename={}", "attachment; filename*=UTF-8''{}"]),
)
def test_filename_from_disposition_fuzz(name: str, form: str) -> None:
    from urllib.parse import quote

    value = form.format(quote(name, safe="") if "*=" in form else name)
    result = filename_from_disposition(value)
    if result is not None:
        assert_safe(result)


@settings(max_examples=300, deadline=None, database=None)
@given(value=st.text(max_size=300))
def test_filename_from_disposition_never_raises(value: str) -> None:
    result = filename_from_disposition(value)
    assert result is None or isinstance(result, str)
    if result is not None:
        assert_safe(result)


# -- zip archives ----------------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """tmp/sandbox/dest is where archives unpack; nothing may appear in sandbox beside dest."""
    (tmp_path / "sandbox" / "dest").mkdir(parents=True)
    return tmp_path / "sandbox"


def assert_nothing_outside(sandbox: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in sandbox.iterdir()) == ["dest"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.zip", "sandbox"]


def escape_targets(dest: Path, entry: str) -> set[Path]:
    """Where an extractor that trusted `entry` would write outside `dest`.

    Its plain join onto dest (an absolute entry replaces dest), with `\\` read as a separator or not,
    and its file name in the folders around: dest's parents, the system temp folder, /tmp, the cwd.
    """
    posix = entry.replace("\\", "/")
    targets = {Path(os.path.normpath(os.path.join(dest, name))) for name in (entry, posix)}
    folders = {dest.parent, dest.parent.parent, Path(tempfile.gettempdir()), Path("/tmp"), Path.cwd()}
    targets |= {folder / PurePosixPath(posix).name for folder in folders}
    return {t for t in targets if not t.is_relative_to(dest)}


def archive(tmp_path: Path, data: bytes) -> Path:
    return write(tmp_path / "archive.zip", data)


def test_extract_gltf_with_bin_and_textures(tmp_path: Path, sandbox: Path) -> None:
    entries = {
        "scene/model.gltf": GLTF_JSON,
        "scene/model.bin": b"\x00" * 1024,
        "scene/textures/base_color.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
        "scene/textures/normal.png": b"\x89PNG\r\n\x1a\n" + b"\x01" * 100,
        "scene/preview.glb": b"glTF",  # a lower-priority model deeper down is not chosen
    }
    dest = sandbox / "dest"
    files = formats.extract_zip(archive(tmp_path, zip_bytes(entries)), dest)
    assert sorted(p.relative_to(dest).as_posix() for p in files) == sorted(entries)
    for name, data in entries.items():
        assert (dest / name).read_bytes() == data
    assert formats.find_model(files) == dest / "scene" / "model.gltf"
    assert_nothing_outside(sandbox, tmp_path)


def test_find_model_prefers_the_shallowest_then_by_name(tmp_path: Path) -> None:
    files = [tmp_path / "a" / "b" / "deep.glb", tmp_path / "z.glb", tmp_path / "a.glb", tmp_path / "notes.txt"]
    assert formats.find_model(files) == tmp_path / "a.glb"


def test_macos_resource_forks_are_not_chosen(tmp_path: Path, sandbox: Path) -> None:
    entries = {"__MACOSX/model/._model.gltf": b"\x00\x05\x16\x07", "model/model.gltf": GLTF_JSON}
    files = formats.extract_zip(archive(tmp_path, zip_bytes(entries)), sandbox / "dest")
    assert formats.find_model(files) == sandbox / "dest" / "model" / "model.gltf"


def unsafe_zip(name: str, data: bytes = b"evil", mode: int | None = None) -> bytes:
    """A zip with one good entry and one whose name (or mode) is unsafe."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.gltf", GLTF_JSON)
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        zf.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "../../../../../../tmp/evil.txt",
        "a/../../evil.txt",
        "..\\evil.txt",
        "/tmp/evil.txt",
        "\\tmp\\evil.txt",
        "C:\\evil.txt",
        "C:/evil.txt",
        "c:evil.txt",
    ],
)
def test_entries_escaping_the_folder_are_refused(tmp_path: Path, sandbox: Path, name: str) -> None:
    entry = name.replace("evil.txt", f"evil-{uuid.uuid4().hex[:12]}.txt")  # this run's own file name
    targets = escape_targets(sandbox / "dest", entry)
    assert Path(tempfile.gettempdir(), PurePosixPath(entry.replace("\\", "/")).name) in targets
    with pytest.raises(errors.UnsafeArchive) as info:
        formats.extract_zip(archive(tmp_path, unsafe_zip(entry)), sandbox / "dest")
    escaped = sorted(str(t) for t in targets if t.exists())
    for path in escaped:  # an extractor that let it out: remove it, then fail
        os.unlink(path)
    assert escaped == []
    assert "unsafe entry" in str(info.value)
    assert_nothing_outside(sandbox, tmp_path)


def test_symlink_entries_are_refused(tmp_path: Path, sandbox: Path) -> None:
    data = unsafe_zip("textures", b"../../../../etc", mode=stat.S_IFLNK | 0o777)
    with pytest.raises(errors.UnsafeArchive):
        formats.extract_zip(archive(tmp_path, data), sandbox / "dest")
    assert not any(p.is_symlink() for p in sandbox.rglob("*"))
    assert_nothing_outside(sandbox, tmp_path)


def test_too_many_files_are_refused_before_writing(tmp_path: Path, sandbox: Path) -> None:
    data = zip_bytes({f"f{i}.txt": b"x" for i in range(11)})
    with pytest.raises(errors.UnsafeArchive) as info:
        formats.extract_zip(archive(tmp_path, data), sandbox / "dest", max_files=10)
    assert "11 files" in str(info.value)
    assert list((sandbox / "dest").iterdir()) == []


def test_a_bomb_is_refused_before_writing(tmp_path: Path, sandbox: Path) -> None:
    payload = b"\x00" * (20 * 1024 * 1024)
    data = zip_bytes({"model.gltf": GLTF_JSON, "bomb.bin": payload})
    assert len(data) < 100_000  # small on the wire, 20 MB unpacked
    with pytest.raises(errors.UnsafeArchive) as info:
        formats.extract_zip(archive(tmp_path, data), sandbox / "dest", max_bytes=1024 * 1024)
    assert "unpack to" in str(info.value)
    assert list((sandbox / "dest").iterdir()) == []
    assert_nothing_outside(sandbox, tmp_path)


def test_a_bomb_that_lies_about_its_size_writes_no_more_than_declared(tmp_path: Path, sandbox: Path) -> None:
    data = bytearray(zip_bytes({"bomb.bin": b"\x00" * (20 * 1024 * 1024)}))
    declared = 1000
    struct.pack_into("<I", data, 22, declared)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # central directory: uncompressed size
    with pytest.raises((errors.UnsafeArchive, errors.NotAModel)):
        formats.extract_zip(archive(tmp_path, bytes(data)), sandbox / "dest", max_bytes=10_000)
    written = sum(p.stat().st_size for p in sandbox.rglob("*") if p.is_file())
    assert written <= 10_000
    assert_nothing_outside(sandbox, tmp_path)


@pytest.mark.parametrize("damage", ["not-a-zip", "truncated", "corrupt-data", "corrupt-directory"])
def test_damaged_zips_are_not_a_model(tmp_path: Path, sandbox: Path, damage: str) -> None:
    good = zip_bytes({"model.gltf": GLTF_JSON * 20, "model.bin": os.urandom(2000)})
    data = bytearray(good)
    if damage == "not-a-zip":
        data = bytearray(b"PK\x03\x04 this is not really a zip")
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "corrupt-data":
        for offset in range(40, 60):  # inside the first entry's deflated data
            data[offset] ^= 0x5A
    else:
        central = data.index(b"PK\x01\x02")
        data[central : central + 4] = b"XXXX"
    with pytest.raises(errors.NotAModel) as info:
        formats.extract_zip(archive(tmp_path, bytes(data)), sandbox / "dest")
    assert "damaged zip" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_zip_without_a_model_names_what_it_holds(tmp_path: Path, sandbox: Path) -> None:
    data = zip_bytes({"readme.txt": b"hi", "render.png": b"\x89PNG", "LICENSE": b"MIT"})
    files = formats.extract_zip(archive(tmp_path, data), sandbox / "dest")
    with pytest.raises(errors.UnsupportedFormat) as info:
        formats.find_model(files)
    assert "png" in str(info.value) and "txt" in str(info.value)
    assert "no 3D model" in str(info.value)


def test_an_empty_zip_holds_nothing(tmp_path: Path, sandbox: Path) -> None:
    files = formats.extract_zip(archive(tmp_path, zip_bytes({})), sandbox / "dest")
    assert files == []
    with pytest.raises(errors.UnsupportedFormat) as info:
        formats.find_model(files)
    assert "nothing" in str(info.value)


def test_remove_quietly(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f").write_bytes(b"x")
    (tmp_path / "g").write_bytes(b"x")
    formats.remove_quietly(tmp_path / "d")
    formats.remove_quietly(tmp_path / "g")
    formats.remove_quietly(tmp_path / "missing")
    formats.remove_quietly(None)
    assert list(tmp_path.iterdir()) == []
