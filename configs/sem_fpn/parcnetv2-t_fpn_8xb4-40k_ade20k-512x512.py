# Semantic FPN + ParCNetV2-T on ADE20K, 512x512 crops, 40k iterations, 32 images per batch (8 GPUs x 4).
# Recipe of the published ParCNetV2 Semantic-FPN config (mmseg 0.x) ported to mmseg 1.x: FPN with 512
# channels, AdamW lr 2e-4 and weight decay 1e-4 (no layer decay), poly (power 0.9) to 0, drop path 0.2,
# fp32 (`tools/train.py ... --amp` switches to AMP), whole-image test after the ADE20K resize.
_base_ = [
    "mmseg::_base_/models/fpn_r50.py",
    "mmseg::_base_/datasets/ade20k.py",
    "mmseg::_base_/default_runtime.py",
    "mmseg::_base_/schedules/schedule_40k.py",
    "../_base_/parcnetv2_tiny.py",
]
custom_imports = dict(imports=["parcnetv2.openmmlab", "parcnetv2.segmentation"], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(_base_.parcnetv2_tiny, drop_path_rate=0.2),
    neck=dict(in_channels=_base_.parcnetv2_tiny_channels, out_channels=512, num_outs=4),
    decode_head=dict(in_channels=[512, 512, 512, 512], channels=128, num_classes=150),
)

optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4),
)
param_scheduler = [dict(type="PolyLR", power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=40000)]

# 8 GPUs x 4 images = 32 images per iteration.
train_dataloader = dict(batch_size=4)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=32)
