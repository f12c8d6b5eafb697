"""avfuse.models."""
