"""ImageNet classification validate (thin wrapper): same as `python -m parcnetv2.classification.validate`."""

from parcnetv2.classification.validate import main

if __name__ == "__main__":
    main()
