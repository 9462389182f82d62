"""Durable state: jobs, manifests, node caches, the hash-chained audit trail, usage.

Built in the issue "Classification policy, the ledger, and a tamper-evident audit trail".
"""
