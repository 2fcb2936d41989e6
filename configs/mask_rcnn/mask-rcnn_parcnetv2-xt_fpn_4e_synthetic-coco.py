# Mask R-CNN with ParCNetV2-XT on the built-in synthetic shapes set (5 classes, 160-256 px images):
# sized for a CPU (narrow neck/heads, 160 px inputs, 4 epochs = 800 iterations of 2 images), trains
# from scratch by default, and evaluates bbox and segm mAP with mmdet's CocoMetric.
#
#   python -m parcnetv2.detection.synthetic                 # writes data/synthetic_coco (once)
#   python tools/train.py configs/mask_rcnn/mask-rcnn_parcnetv2-xt_fpn_4e_synthetic-coco.py
#
# Data elsewhere: --cfg-options data_root=/path/ (our tools), or the SYNTHETIC_COCO_ROOT environment
# variable (any tool, mmdet's own included). Start from a classification checkpoint with
#   --cfg-options model.backbone.init_cfg.type=Pretrained model.backbone.init_cfg.checkpoint=/path/xt.pth
# (and, for a pretrained backbone, e.g. optim_wrapper.paramwise_cfg.decay_rate=0.9).
_base_ = ["mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py"]

custom_imports = dict(imports=["parcnetv2.detection"], allow_failed_imports=False)

data_root = "{{$SYNTHETIC_COCO_ROOT:data/synthetic_coco/}}"
metainfo = dict(
    classes=("circle", "square", "triangle", "star", "hexagon"),
    palette=[(220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 170, 0), (160, 32, 240)],
)
num_classes = 5
# Images (160-256 px) are resized to one square size: no batch padding, and the same shapes every
# iteration (fast on CPU).
image_scale = (160, 160)
width = 128  # neck / head channels (COCO configs: 256), to train on a CPU in minutes

model = dict(
    backbone=dict(
        _delete_=True,
        type="ParCNetV2",
        arch="xt",
        oc_mode="adaptive",
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.05,
        init_cfg=None,
    ),
    neck=dict(in_channels=[48, 96, 192, 320], out_channels=width),
    # objects are ~6-90 px here: anchors of 16-256 px on the stride 4-64 levels
    rpn_head=dict(in_channels=width, feat_channels=width, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, num_convs=2, conv_out_channels=64, num_classes=num_classes),
    ),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64)),
    ),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=30)),
)

train_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
    dict(type="Resize", scale=image_scale, keep_ratio=False),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(type="Resize", scale=image_scale, keep_ratio=False),
    dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file="annotations/instances_train.json",
        data_prefix=dict(img="train/"),
        filter_cfg=dict(filter_empty_gt=True, min_size=16),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file="annotations/instances_val.json",
        data_prefix=dict(img="val/"),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + "annotations/instances_val.json", metric=["bbox", "segm"])
test_evaluator = val_evaluator

max_epochs = 4
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    type="OptimWrapper",
    constructor="ParCNetV2LayerDecayOptimizerConstructor",
    # from scratch: no decay across layers (the constructor still exempts norms, scales and biases
    # from weight decay); with a pretrained backbone use e.g. decay_rate=0.9
    paramwise_cfg=dict(decay_rate=1.0, decay_type="layer_wise", num_layers=6),
    optimizer=dict(_delete_=True, type="AdamW", lr=6e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=10.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type="CosineAnnealingLR",
        by_epoch=True,
        begin=0,
        end=max_epochs,
        eta_min_ratio=0.01,
        convert_to_iter_based=True,
    ),
]
auto_scale_lr = dict(enable=False, base_batch_size=2)

default_hooks = dict(
    logger=dict(type="LoggerHook", interval=10),
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=2),
)
