"""Authentication and authorisation: principals, API keys and JWTs, guards, the middleware."""
