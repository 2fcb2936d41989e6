# Mask R-CNN, ParCNetV2-S, FPN, 3x multi-scale + crop, AMP (drop path 0.6, 13 layers).
_base_ = ["./mask-rcnn_parcnetv2-t_fpn_amp-ms-crop-3x_coco.py"]

checkpoint_file = "checkpoints/parcnetv2_small_in1k.pth"

model = dict(
    backbone=dict(arch="small", drop_path_rate=0.6, init_cfg=dict(checkpoint=checkpoint_file)),
    neck=dict(in_channels=[64, 128, 320, 512]),
)

optim_wrapper = dict(paramwise_cfg=dict(num_layers=13))
