"""The API's routers, one module per resource; handlers stay thin and call the ledger."""
