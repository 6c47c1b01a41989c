"""The Track API: v1 and raw v2 calls, one request each (``client.v1``,
``client.v2``). Private modules; the public names are in ``cio_async``."""
