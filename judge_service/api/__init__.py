"""HTTP layer: routes, middleware and the one table from error type to status."""
