"""The ``lunglesion`` command line: one module per sub-command."""
