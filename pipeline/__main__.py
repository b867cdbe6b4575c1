"""``python -m pipeline`` is the same as the ``lunglesion`` command."""

from pipeline.cli.main import main

raise SystemExit(main())
