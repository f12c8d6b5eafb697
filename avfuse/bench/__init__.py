"""avfuse.bench."""
