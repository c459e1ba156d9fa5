"""``python -m simdiff``: the ``simdiff`` command."""

from .cli import main

raise SystemExit(main())
