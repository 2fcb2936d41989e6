"""mmengine 0.10.7 checkpoints under torch >= 2.6 ``torch.load(weights_only=True)``, without turning it off.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; torch now defaults to ``True`` and refuses
the non-tensor objects that mmengine's ``CheckpointHook`` / ``Runner.save_checkpoint`` pickle into
``message_hub``. Resume, ``load_from``, ``tools/test.py`` and ``init_detector`` then fail with
``UnpicklingError: ... Unsupported global: GLOBAL mmengine.logging.history_buffer.HistoryBuffer``.

:func:`allow_mmengine_checkpoints` adds exactly what those checkpoints reference to torch's weights-only
allow-list (``torch.serialization.add_safe_globals``). The list was found by writing a real checkpoint
with a Runner (Mask R-CNN, epoch loop with validation) and loading it with weights-only until it
passed, one ``UnpicklingError`` at a time:

* ``mmengine.logging.HistoryBuffer`` -- ``message_hub.log_scalars``;
* ``numpy.ndarray``, ``numpy._core.multiarray._reconstruct``, ``numpy.dtype``,
  ``numpy.dtypes.Float64DType``, ``numpy.dtypes.Int64DType`` -- the buffers' value (float64) and count
  (int64) arrays;
* ``numpy._core.multiarray.scalar`` -- numpy scalars in ``message_hub.runtime_info`` (``eta``);
* ``builtins.getattr`` -- ``HistoryBuffer.__getstate__`` stores its statistics methods
  (``HistoryBuffer.min``/``max``/``current``/``mean``), which pickle as ``getattr(HistoryBuffer, 'min')``.
  The real ``getattr`` is *not* allowed: that name resolves to :func:`_history_buffer_statistic`, which
  only returns statistics methods of ``HistoryBuffer`` and refuses anything else.

Nothing here sets ``weights_only=False`` or ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``;
``tests/openmmlab/test_runner.py`` checks a fresh training checkpoint is refused without this and
loads with it. Imports only torch, numpy and mmengine.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import torch

__all__ = ["allow_mmengine_checkpoints", "mmengine_safe_globals"]

_done = False


def _numpy_multiarray() -> Any:
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _history_buffer_statistic(owner: Any, name: str) -> Any:
    """``getattr`` for weights-only loads, limited to ``HistoryBuffer``'s registered statistics methods."""
    from mmengine.logging import HistoryBuffer

    if owner is HistoryBuffer and isinstance(name, str):
        method = HistoryBuffer._statistics_methods.get(name)
        if method is None and name in ("min", "max", "current", "mean"):
            method = getattr(HistoryBuffer, name)
        if method is not None:
            return method
    raise pickle.UnpicklingError(
        f"weights-only load refuses getattr({owner!r}, {name!r}): "
        "only HistoryBuffer statistics methods are allowed"
    )


def mmengine_safe_globals() -> list[Any]:
    """What mmengine 0.10.7 checkpoints reference besides tensors and plain containers (see module doc)."""
    from mmengine.logging import HistoryBuffer

    multiarray = _numpy_multiarray()
    return [
        HistoryBuffer,
        np.ndarray,
        multiarray._reconstruct,
        np.dtype,
        type(np.dtype(np.float64)),  # numpy.dtypes.Float64DType
        type(np.dtype(np.int64)),  # numpy.dtypes.Int64DType
        multiarray.scalar,
        (_history_buffer_statistic, "builtins.getattr"),
    ]


def allow_mmengine_checkpoints() -> None:
    """Allow-list (once per process) what mmengine checkpoints contain, for ``weights_only`` loading."""
    global _done
    if _done:
        return
    torch.serialization.add_safe_globals(mmengine_safe_globals())
    _done = True
