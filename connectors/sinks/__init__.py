"""Built-in sink connectors: webhook (signed, idempotent), sql_upsert (by event id), file_export (daily XLSX)."""
