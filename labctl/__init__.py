"""labctl: containerised multi-host network labs from one lab.yaml, with checked exchanges."""

from importlib.metadata import PackageNotFoundError, version

# One source for the version: the distribution's own metadata (pyproject.toml).
try:
    __version__ = version("labctl-net")
except PackageNotFoundError:   # run from a checkout that was never installed
    __version__ = "0+unknown"
