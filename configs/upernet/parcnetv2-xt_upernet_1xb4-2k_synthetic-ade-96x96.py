# Built-in data: UperNet + ParCNetV2-XT on the rendered ADE20K-layout set of
# `python -m parcnetv2.segmentation.synthetic` (8 classes, 0 = ignore as in ADE20K), sized to train on a
# CPU in minutes. The set is generated into `data_root` on first use if it is missing.
#   MMSEG_TOOLS=.venv/lib/python3.11/site-packages/mmseg/.mim/tools
#   python $MMSEG_TOOLS/train.py THIS_CONFIG
#   python $MMSEG_TOOLS/test.py THIS_CONFIG work_dirs/<config name>/iter_2000.pth [--tta]
# From a classification checkpoint (timm-keyed .pth/.safetensors, e.g. parcnetv2.classification.train's
# best_weights.safetensors):
#   --cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=PATH
# Compared with the ADE20K configs: XT backbone, UperNet/FCN heads with 64/32 channels instead of 512/256,
# 96x96 crops, batch 4, lr 1e-3, 2k iterations, fp32; the same stage-wise lr decay, slide test (crop 96,
# stride 64) and mmseg's TTA model.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(imports=['parcnetv2.segmentation'], allow_failed_imports=False)

max_iters = 2000
crop_size = (96, 96)
num_classes = 8
data_root = 'data/synthetic_ade'
dataset_type = 'SyntheticADEDataset'

data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='ParCNetV2',
        arch='xt',
        oc_mode='adaptive',
        out_indices=(0, 1, 2, 3),
        out_norms=True,
        drop_path_rate=0.1),
    decode_head=dict(in_channels=[48, 96, 192, 320], channels=64, num_classes=num_classes),
    auxiliary_head=dict(in_channels=192, channels=32, num_classes=num_classes),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(64, 64)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),  # reduce_zero_label comes from the dataset (True, as for ADE20K)
    dict(type='RandomResize', scale=(512, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# Multi-scale + flip test (`--tta`): ratios 0.5-1.75 of the single-scale test size (short side 128), as the
# ADE20K base applies them to ADE20K images whose short side is already about 512.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in img_ratios],
            [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
             dict(type='RandomFlip', prob=1.0, direction='horizontal')],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ]),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',  # fp32: AMP needs a GPU in mmengine
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='ParCNetV2LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=2))
randomness = dict(seed=0)
