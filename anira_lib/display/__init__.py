"""Figures (matplotlib) and interactive views (ipywidgets)."""
