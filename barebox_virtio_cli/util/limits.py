"""Limits of the host's interfaces that bbv checks before it uses them. Pure."""

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes; a client cannot connect to a 108-byte path
