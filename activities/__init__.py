"""All I/O done on behalf of workflows, as methods of classes with injected clients."""
