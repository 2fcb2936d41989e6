"""Old location of :mod:`parcnetv2.openmmlab.weights_only`, kept until ``parcnetv2/visualize.py`` imports
it from there; then delete this file."""

from parcnetv2.openmmlab.weights_only import allow_mmengine_checkpoints, mmengine_safe_globals

__all__ = ["allow_mmengine_checkpoints", "mmengine_safe_globals"]
