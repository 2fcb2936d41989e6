"""Old location of :mod:`parcnetv2.openmmlab.backbone`, kept until ``tests/backbone/test_traced.py``
imports it from there; then delete this file."""

from parcnetv2.openmmlab.backbone import ParCNetV2Backbone, load_pretrained_backbone

__all__ = ["ParCNetV2Backbone", "load_pretrained_backbone"]
