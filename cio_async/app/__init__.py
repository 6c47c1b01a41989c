"""The App API: transactional messages, broadcasts, people lookups (``client.app``)
and reporting webhooks. Private modules; the public names are in ``cio_async``."""
