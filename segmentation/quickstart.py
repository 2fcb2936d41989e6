"""Old name of :mod:`parcnetv2.segmentation.train_builtin`, kept until ``parcnetv2/demo.py`` imports
``BUILTIN_CONFIG`` from there and ``load_config`` from :mod:`parcnetv2.openmmlab.config`; then delete
this file."""

from parcnetv2.openmmlab.config import load_config as build_config

from .train_builtin import BUILTIN_CONFIG

__all__ = ["BUILTIN_CONFIG", "build_config"]
