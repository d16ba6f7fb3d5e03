"""OEC.sh webhooks (``docs/webhooks.md``): the receiver, signature verification, the secrets and
the registration. Knows nothing of kopf; a delivery is only a hint to read the API."""
