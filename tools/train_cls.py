"""ImageNet classification train (thin wrapper): same as `python -m parcnetv2.classification.train`."""

from parcnetv2.classification.train import main

from parcnetv2.cli import run_cli

if __name__ == "__main__":
    run_cli(main)
