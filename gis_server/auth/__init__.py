"""Accounts, roles and scopes: who may see and change what.

- ``settings``: ``GIS_AUTH_*`` (anonymous access, token lifetime, signing key).
- ``principal``: the caller of the current request (a context variable the
  request's middleware sets and every database transaction reads).
- ``policy``: the one place that decides what a role may read, edit and do.
- ``accounts``: users (argon2 password hashes) and API keys (stored hashed).
- ``tokens``: short-lived signed JWTs for the map pages.
- ``dbsecurity``: the same policy in the database: scoped roles, grants and
  row-level security derived from the layer declarations, and the per-
  transaction ``SET LOCAL ROLE`` that applies them.
"""
