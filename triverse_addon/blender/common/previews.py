"""Small pictures shown in panels, held in a `bpy.utils.previews` collection: pixels already decoded (on a
worker thread) are copied in on the main thread, outside `draw()`, which only asks for icon ids."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...service.thumbnail import Pixels


class PreviewCollection:
    """A named set of pictures (by key) for one panel; created on register, removed on unregister."""

    def __init__(self) -> None:
        self._collection: Any = None

    def register(self) -> None:
        """Nothing yet: the collection is made with its first picture (bpy.utils.previews stays out of the start)."""

    def unregister(self) -> None:
        """Release every picture."""
        import bpy.utils.previews

        if self._collection is not None:
            bpy.utils.previews.remove(self._collection)
        self._collection = None

    def put(self, key: str, pixels: Pixels) -> None:
        """Show `pixels` for `key` (replacing an earlier picture)."""
        if self._collection is None:
            import bpy.utils.previews  # a submodule Blender loads only when asked: with the first picture

            self._collection = bpy.utils.previews.new()
        if key in self._collection:
            del self._collection[key]
        preview = self._collection.new(key)
        preview.image_size = preview.icon_size = (pixels.width, pixels.height)
        preview.image_pixels_float.foreach_set(pixels.rgba)
        preview.icon_pixels_float.foreach_set(pixels.rgba)

    def has(self, key: str) -> bool:
        """Whether a picture is held for `key`."""
        return self._collection is not None and key in self._collection

    def icon(self, key: str) -> int:
        """The icon id of `key`'s picture, or 0."""
        return int(self._collection[key].icon_id) if self.has(key) else 0

    def forget(self, key: str) -> None:
        """Release `key`'s picture."""
        if self.has(key):
            del self._collection[key]
