"""Persistence and the data language: backends, migrations, rows, queries, rules."""
