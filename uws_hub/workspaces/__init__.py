"""Workspaces on disk: path guard, safe file operations, upload, scan, lifecycle."""
