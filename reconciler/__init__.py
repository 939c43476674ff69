"""ocpi-parties: declare the OCPI parties of a MaEVe CSMS in git and reconcile its database with them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ocpi-parties")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"
