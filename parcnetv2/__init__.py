"""ParCNetV2: oversized convolution and bifurcate gate unit (ICCV 2023).

The package root. The subpackages ``parcnetv2.backbone``, ``.classification``, ``.detection`` and
``.segmentation`` are the repository's top-level folders (mapped in pyproject.toml); this folder holds
what they share: the OpenMMLab layer (:mod:`.openmmlab`), the built-in data (:mod:`.builtin_data`), the
end-to-end demo (:mod:`.demo`), export (:mod:`.deploy`), plots (:mod:`.visualize`), atomic writes
(:mod:`.fileio`) and the one-line errors of the command lines (:mod:`.cli`).

Importing the package registers the ParCNetV2 models in timm (``timm.create_model('parcnetv2_tiny')``).
"""

from pathlib import Path

from parcnetv2.backbone import ParCNetV2, load_checkpoint_into

__all__ = ["REPO_ROOT", "ParCNetV2", "load_checkpoint_into"]
__version__ = "0.1.0"

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository checkout the package is installed from (editable): ``configs/``, ``data/``."""
