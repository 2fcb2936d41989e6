"""``python -m parcnetv2.builtin_data``: see :mod:`.cli`."""

from .cli import main

main()
