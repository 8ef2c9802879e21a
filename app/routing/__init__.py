"""The serving control plane: the model registry, rollouts and the router over endpoints."""
