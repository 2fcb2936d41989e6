"""The one ParCNetV2 definition; importing it registers the models in timm."""

from .checkpoint import CheckpointError, load_checkpoint_into, read_checkpoint
from .oversized_conv import OversizedConv2d, oversized_conv, resize_oc_kernel
from .parcnetv2 import MIN_INPUT_SIZE, VARIANTS, ParCNetV2, ParCNetV2Block, ParCTokenMixer

__all__ = [
    "CheckpointError",
    "MIN_INPUT_SIZE",
    "OversizedConv2d",
    "ParCNetV2",
    "ParCNetV2Block",
    "ParCTokenMixer",
    "VARIANTS",
    "load_checkpoint_into",
    "oversized_conv",
    "read_checkpoint",
    "resize_oc_kernel",
]
