# Cascade Mask R-CNN, ParCNetV2-B, 3x (drop path 0.7, layer decay 0.8 over 13 layers).
_base_ = ["./cascade-mask-rcnn_parcnetv2-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py"]

checkpoint_file = "checkpoints/parcnetv2_base_in1k.pth"

model = dict(
    backbone=dict(arch="base", drop_path_rate=0.7, init_cfg=dict(checkpoint=checkpoint_file)),
    neck=dict(in_channels=[96, 192, 384, 576]),
)

optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.8, num_layers=13))
