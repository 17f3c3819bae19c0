"""Transports: the gevent HTTP/2 server and the per-invocation driver."""
