"""stagegate: verified staging of datasets onto node-local NVMe, and audited egress.

This small package is the shared kernel every layer may import: the version, the root of
the error hierarchy, and the values layers share without importing each other (progress
snapshots, durability). The layers themselves are the top-level packages ``transfer``,
``checkpoints``, ``policies``, ``ledger``, ``workers``, ``api`` and ``client``.
"""

__version__ = "0.1.0"
