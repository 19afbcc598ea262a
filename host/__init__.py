"""bothost: a plugin-based host for automated trading bots."""
__version__ = "0.1.0"
#: the plugin API this host speaks (a plugin declares the one it was written for: BOTHOST_API)
API_VERSION = 1
