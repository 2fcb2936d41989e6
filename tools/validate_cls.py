"""ImageNet classification validate (thin wrapper): same as `python -m parcnetv2.classification.validate`."""

from parcnetv2.classification.validate import main

from parcnetv2.cli import run_cli

if __name__ == "__main__":
    run_cli(main)
