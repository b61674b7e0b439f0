"""``python -m hamkit``: the same as the ``hamkit`` command."""

from hamkit.cli.main import main

raise SystemExit(main())
