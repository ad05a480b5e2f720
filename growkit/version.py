"""growkit's version (its own module, so that the package's parts can stamp it without importing the package)."""
__version__ = "0.1.0"
