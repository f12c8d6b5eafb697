"""avfuse.engine."""
