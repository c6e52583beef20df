"""Job types, resource parameters and their validation."""
