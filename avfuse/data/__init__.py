"""avfuse.data."""
