"""The HTTP layer: routers, dependencies and the one error mapping."""
