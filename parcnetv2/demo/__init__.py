"""The main job: pretrain, transfer and report on the built-in data, end to end, on a CPU.

    python -m parcnetv2.demo [--out results] [--budget full|tiny]      (``make demo``)

Stages, each with the project's real pipelines and recipes (:mod:`.stages`, :mod:`.pictures`):

1. ``data``: generate the three built-in sets (:mod:`parcnetv2.builtin_data`: one renderer, the same
   object categories in a classification, a COCO-format and an ADE20K-layout set);
2. ``classification``: pretrain ``parcnetv2_xt`` with :mod:`parcnetv2.classification.train` and its
   recipe ``configs/classification/builtin.yaml``;
3. ``detection``: Mask R-CNN twice, from that checkpoint and from scratch (same budget and seed, side by
   side), each trained and tested by the one OpenMMLab driver (:mod:`parcnetv2.openmmlab.runner`,
   mmdet's ``CocoMetric``; :mod:`.downstream`);
4. ``segmentation``: the same for UperNet with mmseg (mIoU, ``IoUMetric``);
5. ``pictures``: training curves of all three stages (both runs of the downstream ones), ground truth
   beside prediction on validation images (mmdet's and mmseg's visualizers), and ``index.md``.

The budget (:mod:`.budget`) sets only data sizes and training lengths. Each stage writes
``OUT/<stage>/result.json`` when it finishes, each downstream run ``OUT/<stage>/<run>/run.json``; a rerun
skips what is finished (and resumes an interrupted training from its last checkpoint) unless its inputs
changed (:mod:`.context`). The summary table is printed at the end and written to
``OUT/summary.md`` and ``OUT/summary.json`` (:mod:`.job`).
"""

from .budget import BUDGETS, Budget
from .job import main, run

__all__ = ["BUDGETS", "Budget", "main", "run"]
