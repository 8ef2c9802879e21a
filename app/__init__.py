"""The ragserve app: Litestar factory, transports, the turn pipeline and the CLI."""
