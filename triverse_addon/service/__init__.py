"""The add-on's pure layer: the Triverse service as Python sees it, without Blender.

Transport, the API's endpoints and their models, errors and their mapping, model formats, the library,
the stores, the live watch, the job runner and the batch pools. Nothing here imports `bpy` or the
add-on's Blender side (`..blender`); the lint tier fails when something does. Blender code reaches the
service through these modules; these modules never reach back.
"""
