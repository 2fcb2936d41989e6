# ParCNetV2-T as an OpenMMLab backbone: the part the COCO and ADE20K configs here share. The detector or
# segmentor around it comes from the toolbox's own base (mmdet::/mmseg::); mmengine does not merge a
# `model` key from two bases, so configs list this file as a second base and read its names through
# `_base_`:  backbone=dict(_base_.parcnetv2_tiny, drop_path_rate=0.4).
parcnetv2_tiny_checkpoint = "checkpoints/parcnetv2_tiny_in1k.pth"
parcnetv2_tiny = dict(
    _delete_=True,  # replace the base's ResNet settings, do not merge into them
    type="ParCNetV2",
    arch="tiny",
    oc_mode="adaptive",  # 'fixed' reproduces the published setting (224-sized kernels)
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(type="Pretrained", checkpoint=parcnetv2_tiny_checkpoint),
)
parcnetv2_tiny_channels = [64, 128, 320, 512]
