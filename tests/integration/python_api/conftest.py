"""The service's fixtures (a real API, Redis, PostgreSQL and node workers), reused as they are."""

from integration.service.conftest import dataset, start_cluster

__all__ = ["dataset", "start_cluster"]
