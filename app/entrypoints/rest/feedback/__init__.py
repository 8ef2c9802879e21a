"""REST: feedback on an answer."""
