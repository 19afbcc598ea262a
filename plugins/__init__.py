"""Plugins that ship with bothost, registered through the `bothost` entry-point group."""
