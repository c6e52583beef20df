"""Tornado handlers, one module per resource; each ends with its routes."""
