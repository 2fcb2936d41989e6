# UperNet + ParCNetV2-T on ADE20K, 512x512 crops, 160k iterations, 16 images per batch (8 GPUs x 2), AMP.
# Recipe of the published ParCNetV2 segmentation configs (mmseg 0.x) ported to mmseg 1.x: AdamW lr 1e-4,
# stage-wise lr decay 0.9 (num_layers 6), drop path 0.3, weight decay 0.05, 1500 warmup iterations then
# poly (power 1), sliding-window test (crop 512, stride 341). Multi-scale + flip test (ratios 0.5-1.75):
# `tools/test.py CONFIG CKPT --tta` (mmseg's SegTTAModel with the ADE20K base's tta_pipeline).
_base_ = [
    "mmseg::_base_/models/upernet_r50.py",
    "mmseg::_base_/datasets/ade20k.py",
    "mmseg::_base_/default_runtime.py",
    "mmseg::_base_/schedules/schedule_160k.py",
    "../_base_/parcnetv2_tiny.py",
]
custom_imports = dict(imports=["parcnetv2.openmmlab", "parcnetv2.segmentation"], allow_failed_imports=False)

# ImageNet-1k ParCNetV2-T weights: checkpoints/parcnetv2_tiny_in1k.pth (../_base_/parcnetv2_tiny.py; the
# classification pipeline exports them; a timm-keyed
# state dict, .pth or .safetensors). Loading is strict: a missing file or a key that does not fit raises.
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(_base_.parcnetv2_tiny, drop_path_rate=0.3),
    decode_head=dict(in_channels=_base_.parcnetv2_tiny_channels, num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150),
    test_cfg=dict(mode="slide", crop_size=crop_size, stride=(341, 341)),
)

optim_wrapper = dict(
    _delete_=True,
    type="AmpOptimWrapper",
    loss_scale="dynamic",
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor="ParCNetV2LayerDecayOptimizerConstructor",
    paramwise_cfg=dict(decay_rate=0.9, decay_type="stage_wise", num_layers=6),
)

param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type="PolyLR", power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000),
]

# 8 GPUs x 2 images = 16 images per iteration (scale lr/batch together when you change this).
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
