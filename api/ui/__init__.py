"""The auditor's web pages under ``/ui/``: read-only, rendered on the server, no script.

``install_ui(app)`` adds the pages to the API app. Only ``read_model`` talks to the ledger;
filters, paging, CSV, the chart, sessions and the origin check are pure and unit-tested.
"""

from stagegate.api.ui.pages import install_ui

__all__ = ["install_ui"]
