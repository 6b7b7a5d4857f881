"""The operator's console at ``/ui``: server-rendered pages over the same services as the API,
behind a signed session cookie (``session.py``), with small vendored static files."""
