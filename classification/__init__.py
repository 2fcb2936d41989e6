"""ParCNetV2 ImageNet classification: training and evaluation from timm components.

Entry points (each also ``main(argv)`` for programmatic use):

* ``python -m parcnetv2.classification.train [DATA_PATH] -c RECIPE.yaml ...`` -- training, single
  process or torchrun (``train.py``; the options of both tools in ``args.py``, recipes in
  ``configs/classification/``);
* ``python -m parcnetv2.classification.validate [DATA_PATH] --checkpoint ...`` -- top-1/top-5 at one or
  more input sizes (``validate.py``);
* ``python -m parcnetv2.classification.export CKPT OUT`` -- a timm model folder, or a weights-only
  ``.safetensors``/``.pth`` (``export.py``);
* ``python -m parcnetv2.classification.benchmark_startup`` -- the start-up data check timed on a large
  generated folder.

Without DATA_PATH the tools read the built-in set (``python -m parcnetv2.builtin_data cls`` writes it).
Modules: ``folder_scan`` (the ImageFolder check, once per job), ``data`` (datasets, loaders), ``components``
(optimizer, schedule, EMA, mixup, loss), ``engine`` (epoch loop, evaluation, autocast), ``checkpointing``
(resumable checkpoints and their repair), ``preemption`` (signal stops), ``run_log`` (progress, JSON/CSV,
curves), ``modeling``, ``distributed``.
"""
