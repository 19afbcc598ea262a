"""The ``replay_feed`` plugin: replay CSV/Parquet bars, ticks or quotes, or seeded synthetic data.

Modules: ``plugin`` (the kind, its config and factory), ``feed`` (the feed objects),
``reader`` (file -> validated columnar chunks), ``times`` (ISO timestamps, New York time),
``bars`` (bar interval, bar -> four ticks), ``synthetic`` (seeded GBM bars, CSV writer),
``errors`` (``DataError``). Submodules are imported on use: numpy and pyarrow load only when a
feed is built.
"""
