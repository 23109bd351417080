"""Placeholder: filled by the cases work."""
