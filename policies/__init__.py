"""Data classification: resolve labels from object metadata, decide with the policy file.

Pure: no network, no disk. Built in the issue "Classification policy, the ledger, and a
tamper-evident audit trail".
"""
