"""ParCNetV2 segmentation."""
