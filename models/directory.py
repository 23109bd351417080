"""Placeholder: filled by the directory work."""
