"""Helpers shared by test suites: real processes to test against."""
