"""The package's version, in a module of its own: every layer may read it without importing the
package root, whose Python API reaches into the client (see ``stagegate/__init__.py``)."""

__version__ = "0.1.0"
