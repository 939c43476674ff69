"""ocpi-parties: declare the OCPI parties of a MaEVe CSMS in git and reconcile its database with them."""

__version__ = "0.1.0"
