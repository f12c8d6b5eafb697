"""Sub-commands of the `avfuse` CLI, one module each, each with `register(subparsers)`."""
