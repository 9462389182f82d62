"""The ``stagegate`` command line and the Python client."""
