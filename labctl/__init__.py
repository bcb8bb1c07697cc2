"""labctl: containerised multi-host network labs from one lab.yaml, with checked exchanges."""

__version__ = "0.1.0"
