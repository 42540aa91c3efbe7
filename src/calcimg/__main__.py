"""``python -m calcimg``: the same as the ``calcimg`` command."""

from calcimg.cli import main

raise SystemExit(main())
