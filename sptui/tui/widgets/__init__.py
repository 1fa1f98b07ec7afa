"""Widgets of the terminal app, one feature each."""
