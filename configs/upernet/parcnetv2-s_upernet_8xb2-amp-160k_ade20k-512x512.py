# UperNet + ParCNetV2-S on ADE20K: the T recipe with stage-wise decay num_layers 12 and drop path 0.3.
_base_ = "./parcnetv2-t_upernet_8xb2-amp-160k_ade20k-512x512.py"

checkpoint_file = "checkpoints/parcnetv2_small_in1k.pth"
model = dict(
    backbone=dict(
        arch="small", drop_path_rate=0.3, init_cfg=dict(type="Pretrained", checkpoint=checkpoint_file)
    ),
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320),
)

optim_wrapper = dict(
    optimizer=dict(weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.9, decay_type="stage_wise", num_layers=12),
)
