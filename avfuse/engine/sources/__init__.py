"""avfuse.engine.sources."""
