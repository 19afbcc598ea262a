"""The TQQQ grid strategy (spec tqqq-grid.md): pure math in ``grid``, tags in ``tags``, pure
reconstruct in ``reconstruct``, the runtime state machine in ``book``, hooks in ``plugin``."""
