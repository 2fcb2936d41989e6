"""Old location of :mod:`parcnetv2.openmmlab.config` / :mod:`parcnetv2.openmmlab.runner`, kept until
``parcnetv2/visualize.py``, ``parcnetv2/deploy.py`` and ``tools/analysis_tools/gpu_check.py`` import
from there; then delete this file."""

from parcnetv2.openmmlab.config import config_scope
from parcnetv2.openmmlab.runner import build_model

__all__ = ["build_model", "config_scope"]
