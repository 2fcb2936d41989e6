# Mask R-CNN, ParCNetV2-XT, FPN, 1x, AMP. Drop path 0.1 and num_layers 6 (= deepest XT layer id) are our
# choices: no XT detection setting was published.
_base_ = ["./mask-rcnn_parcnetv2-t_fpn_amp-1x_coco.py"]

checkpoint_file = "checkpoints/parcnetv2_xt_in1k.pth"

model = dict(
    backbone=dict(arch="xt", drop_path_rate=0.1, init_cfg=dict(checkpoint=checkpoint_file)),
    neck=dict(in_channels=[48, 96, 192, 320]),
)

optim_wrapper = dict(paramwise_cfg=dict(num_layers=6))
