"""Tornado handlers: parse, authenticate, forward to an actor or the store, render.

No business rules here.
"""
