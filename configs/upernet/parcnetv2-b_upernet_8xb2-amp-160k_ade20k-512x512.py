# UperNet + ParCNetV2-B on ADE20K: the T recipe with stage-wise decay num_layers 12, drop path 0.5 and
# weight decay 0.02 (the published B values since the official repo's commit 20980d1).
_base_ = "./parcnetv2-t_upernet_8xb2-amp-160k_ade20k-512x512.py"

checkpoint_file = "checkpoints/parcnetv2_base_in1k.pth"
model = dict(
    backbone=dict(
        arch="base", drop_path_rate=0.5, init_cfg=dict(type="Pretrained", checkpoint=checkpoint_file)
    ),
    decode_head=dict(in_channels=[96, 192, 384, 576]),
    auxiliary_head=dict(in_channels=384),
)

optim_wrapper = dict(
    optimizer=dict(weight_decay=0.02),
    paramwise_cfg=dict(decay_rate=0.9, decay_type="stage_wise", num_layers=12),
)
