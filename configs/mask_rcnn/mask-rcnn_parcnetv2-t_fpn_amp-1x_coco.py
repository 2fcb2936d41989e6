# Mask R-CNN, ParCNetV2-T backbone, FPN, 1x schedule (12 epochs, single scale 1333x800), AMP, COCO 2017.
# Inherits mmdet's own config; runs with mmdet's tools/train.py and tools/test.py unchanged.
_base_ = ["mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py", "../_base_/parcnetv2_tiny.py"]

custom_imports = dict(imports=["parcnetv2.openmmlab", "parcnetv2.detection"], allow_failed_imports=False)

# Backbone weights: checkpoints/parcnetv2_tiny_in1k.pth from our classification pipeline (or a published
# one); elsewhere: --cfg-options model.backbone.init_cfg.checkpoint=/path/to/checkpoint.pth
model = dict(
    backbone=dict(_base_.parcnetv2_tiny, drop_path_rate=0.4),
    neck=dict(in_channels=_base_.parcnetv2_tiny_channels),
)

# AdamW, layer-wise lr decay (ids from downsample_layers/stages, one per 3 blocks; T: 7 layers)
optim_wrapper = dict(
    type="AmpOptimWrapper",
    constructor="ParCNetV2LayerDecayOptimizerConstructor",
    paramwise_cfg=dict(decay_rate=0.95, decay_type="layer_wise", num_layers=7),
    optimizer=dict(_delete_=True, type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
)

param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type="MultiStepLR", begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

# 8 GPUs x 2 images = 16; `--auto-scale-lr` rescales lr for another total batch
auto_scale_lr = dict(enable=False, base_batch_size=16)
