"""ParCNetV2 ImageNet classification: training and evaluation from timm components, with built-in data.

Entry points (each also ``main(argv) -> dict`` for programmatic use):

* ``python -m parcnetv2.classification.train [DATA_PATH] ...`` -- training, single process or torchrun
  (``train.py``; options and recipe defaults in ``config.py``);
* ``python -m parcnetv2.classification.validate [DATA_PATH] --checkpoint ...`` -- top-1/top-5 at one or
  more input sizes (``validate.py``);
* ``python -m parcnetv2.classification.export CKPT OUT`` -- weights-only ``.safetensors``/``.pth``;
* ``python -m parcnetv2.classification.synthetic`` -- the built-in data set (used without DATA_PATH).

Modules: ``data`` (ImageFolder checks, loaders), ``engine`` (epoch loop, evaluation), ``checkpointing``
(atomic, resumable checkpoints; export), ``records`` (progress, JSON/CSV, curves), ``distributed``.
"""
