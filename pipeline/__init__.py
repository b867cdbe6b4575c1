"""lunglesion pipeline: DICOM ingestion, batch orchestration, output files and the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lunglesion")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
