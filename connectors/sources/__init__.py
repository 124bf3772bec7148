"""Built-in source connectors: file_drop (CSV/XLSX), sql_poll (table by cursor), http_ingest (JSON POSTs)."""
