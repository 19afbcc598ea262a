"""``bothost new-plugin``: writes a plugin package an author adapts.

``names`` checks NAME and derives every name the package uses (pure); ``render`` fills the
templates under ``templates/`` into the package's files (pure); ``write`` puts them on disk
without ever overwriting anything; ``command`` is the click command.
"""
