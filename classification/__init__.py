"""ParCNetV2 classification."""
