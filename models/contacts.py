"""Placeholder: filled by the contacts work."""
