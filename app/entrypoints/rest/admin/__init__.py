"""REST: ``/v1/admin``, tenants, users and API keys."""
