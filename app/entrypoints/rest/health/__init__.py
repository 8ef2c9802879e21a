"""REST: liveness, readiness and the Prometheus scrape."""
