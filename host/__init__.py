"""bothost: a plugin-based host for automated trading bots."""
__version__ = "0.1.0"
