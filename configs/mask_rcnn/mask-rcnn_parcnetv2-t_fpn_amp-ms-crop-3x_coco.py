# Mask R-CNN, ParCNetV2-T, FPN, 3x (36 epochs) with DETR-style multi-scale 480-800 + crop, AMP.
# Published ParCNetV2 setting: AdamW lr 1e-4, wd 0.05, layer decay 0.95 over 7 layers, drop path 0.4.
# Pipeline and schedule come from mmdet's own ConvNeXt-T 3x config.
_base_ = [
    "mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py",
    "../_base_/parcnetv2_tiny.py",
]

custom_imports = dict(imports=["parcnetv2.openmmlab", "parcnetv2.detection"], allow_failed_imports=False)

model = dict(
    backbone=dict(_base_.parcnetv2_tiny, drop_path_rate=0.4),
    neck=dict(in_channels=_base_.parcnetv2_tiny_channels),
)

optim_wrapper = dict(
    _delete_=True,
    type="AmpOptimWrapper",
    constructor="ParCNetV2LayerDecayOptimizerConstructor",
    paramwise_cfg=dict(decay_rate=0.95, decay_type="layer_wise", num_layers=7),
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
)

auto_scale_lr = dict(enable=False, base_batch_size=16)
