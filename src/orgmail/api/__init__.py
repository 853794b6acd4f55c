"""HTTP only: one module per resource; routes parse a schema, call one core function, return a schema."""
