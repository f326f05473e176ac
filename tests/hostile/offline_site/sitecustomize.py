"""Loaded by the hostile tests' subprocesses (through PYTHONPATH): no network but loopback.

A refused name lookup fails at once, as on an air-gapped machine, so a test never waits on a
network timeout and never downloads, whatever network the test machine has.
"""

import socket

_real_getaddrinfo = socket.getaddrinfo
_LOCAL = {"localhost", "127.0.0.1", "::1", None}


def _offline_getaddrinfo(host, *args, **kwargs):
    if host in _LOCAL or (isinstance(host, bytes) and host.decode() in _LOCAL):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (tests: no network)")


socket.getaddrinfo = _offline_getaddrinfo
