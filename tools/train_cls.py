"""ImageNet classification train (thin wrapper): same as `python -m parcnetv2.classification.train`."""

from parcnetv2.classification.train import main

if __name__ == "__main__":
    main()
