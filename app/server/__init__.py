"""The server: the app factory, the lifespan that opens every part, one provider per service."""
