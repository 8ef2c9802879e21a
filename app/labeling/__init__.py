"""The labeling queue as the app fills it: its settings, and what opens a task."""
