"""The server's components, one module each, all of the same shape (see base.py)."""
