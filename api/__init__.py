"""FastAPI control plane: routes, auth, schemas. Queues work by task name only.

Built in the issue "Control plane and node workers".
"""
