"""The admin labeling console: server-rendered pages under ``/admin``."""
