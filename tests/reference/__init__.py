"""Independent reference implementations used by differential tests (not shipped code)."""
