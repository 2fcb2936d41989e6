# Cascade Mask R-CNN, ParCNetV2-S, 3x (drop path 0.6, layer decay 0.7 over 13 layers).
_base_ = ["./cascade-mask-rcnn_parcnetv2-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py"]

checkpoint_file = "checkpoints/parcnetv2_small_in1k.pth"

model = dict(
    backbone=dict(arch="small", drop_path_rate=0.6, init_cfg=dict(checkpoint=checkpoint_file)),
    neck=dict(in_channels=[64, 128, 320, 512]),
)

optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.7, num_layers=13))
