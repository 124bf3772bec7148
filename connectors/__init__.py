"""The edge of the hub: department connectors and the SDK to write them (see connectors/README.md)."""
