"""avfuse.export."""
