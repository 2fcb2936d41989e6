"""Old location of :mod:`parcnetv2.openmmlab.checkpoint_coverage`, kept until ``parcnetv2/visualize.py``
imports it from there; then delete this file."""

from parcnetv2.openmmlab.checkpoint_coverage import (
    PartialCheckpointWarning,
    check_checkpoint_covers,
    key_group,
)

__all__ = ["PartialCheckpointWarning", "check_checkpoint_covers", "key_group"]
