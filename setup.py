# Kept for tools that still call setup.py; all metadata lives in pyproject.toml (PEP 517/621).
from setuptools import setup

setup()
