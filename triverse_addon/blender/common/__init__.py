"""What the Blender features share: the add-on's settings, reporting a failure, redraws, previews, the modal job,
the scene import, image input, the stores and the background look-ups. Never imports a feature."""
