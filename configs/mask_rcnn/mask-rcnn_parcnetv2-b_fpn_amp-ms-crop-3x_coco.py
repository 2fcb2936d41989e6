# Mask R-CNN, ParCNetV2-B, FPN, 3x multi-scale + crop, AMP (drop path 0.7, 13 layers).
_base_ = ["./mask-rcnn_parcnetv2-t_fpn_amp-ms-crop-3x_coco.py"]

checkpoint_file = "checkpoints/parcnetv2_base_in1k.pth"

model = dict(
    backbone=dict(arch="base", drop_path_rate=0.7, init_cfg=dict(checkpoint=checkpoint_file)),
    neck=dict(in_channels=[96, 192, 384, 576]),
)

optim_wrapper = dict(paramwise_cfg=dict(num_layers=13))
