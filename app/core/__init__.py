"""What every feature of the app shares: settings, errors, logs, metrics, readiness, OpenAPI."""
