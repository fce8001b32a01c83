"""Published model families, each searchable and exportable (nas.zoo)."""
