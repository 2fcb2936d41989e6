"""``python -m parcnetv2.demo``: see :mod:`.job`."""

from .job import main

main()
