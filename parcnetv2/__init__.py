"""ParCNetV2: oversized convolution and bifurcate gate unit (ICCV 2023).

This folder holds only the package root; the subpackages are the top-level folders backbone/,
classification/, detection/ and segmentation/ (mapped in pyproject.toml).

Importing the package registers the ParCNetV2 models in timm (``timm.create_model('parcnetv2_tiny')``).
"""

from parcnetv2.backbone import ParCNetV2, load_checkpoint_into

__all__ = ["ParCNetV2", "load_checkpoint_into"]
__version__ = "0.1.0"
