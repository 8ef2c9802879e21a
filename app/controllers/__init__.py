"""REST controllers, one file per resource."""
