# Cascade Mask R-CNN, ParCNetV2-T, FPN, 4conv1fc box heads with GIoU loss, 3x multi-scale + crop, AMP.
# Published ParCNetV2 setting: AdamW lr 2e-4, wd 0.05, layer decay 0.7 over 7 layers, drop path 0.4.
# Heads, pipeline and schedule come from mmdet's own ConvNeXt-T cascade config.
_base_ = [
    "mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py",
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
    paramwise_cfg=dict(decay_rate=0.7, decay_type="layer_wise", num_layers=7),
    optimizer=dict(type="AdamW", lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
)

auto_scale_lr = dict(enable=False, base_batch_size=16)
