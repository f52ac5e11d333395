"""The query language: parse once, then compile to SQL (per dialect) or match in Python."""
