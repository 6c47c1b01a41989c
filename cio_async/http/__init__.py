"""The HTTP layer: the pooled session, retries (one rule for direct calls and
batches), redirects that keep credentials to Customer.io's origins, and rate limiters.
Private modules; the public names are in ``cio_async``."""
