"""ParCNetV2 detection."""
