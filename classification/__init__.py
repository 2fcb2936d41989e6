"""ParCNetV2 ImageNet classification: training and evaluation from timm components, with built-in data.

Entry points (each also ``main(argv)`` for programmatic use):

* ``python -m parcnetv2.classification.train [DATA_PATH] [-c RECIPE.yaml] ...`` -- training, single
  process or torchrun (``train.py``; the options of both tools in ``args.py``, recipes in
  ``configs/classification/``);
* ``python -m parcnetv2.classification.validate [DATA_PATH] --checkpoint ...`` -- top-1/top-5 at one or
  more input sizes (``validate.py``);
* ``python -m parcnetv2.classification.export CKPT OUT`` -- a timm model folder, or a weights-only
  ``.safetensors``/``.pth``;
* ``python -m parcnetv2.classification.synthetic`` -- the built-in data set (used without DATA_PATH).

Modules: ``data`` (ImageFolder checks, loaders), ``engine`` (epoch loop, evaluation, autocast),
``checkpointing`` (resumable checkpoints; exports), ``run_log`` (progress, JSON/CSV, curves),
``distributed``.
"""
