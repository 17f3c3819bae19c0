"""Transports: how HTTP requests reach the SDK (HTTP/2, HTTP/1.1, process serving).

Every transport depends only on :mod:`restate_sync.exchange`: it builds an ``Exchange`` per request
and calls the handler it was given (``Endpoint.handle``).
"""
