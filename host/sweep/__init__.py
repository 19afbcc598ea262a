"""``bothost sweep``: one backtest per cell of a parameter grid and per data file, on Dask.

One idea per module:

- :mod:`.grammar`  ``--param PATH=SPEC``: ranges and lists of values (pure).
- :mod:`.plan`     the data files, the cells (parameter product x data files), each cell's key,
                   and the checks that run before any cell does.
- :mod:`.cell`     what a worker runs for one cell: the same engine as ``bothost backtest``.
- :mod:`.runner`   a ``distributed.LocalCluster`` or an existing scheduler, the cells through it,
                   each result kept as it arrives (:mod:`.store`).
- :mod:`.results`  ``sweep.parquet``, the best cells, the heatmaps.
- :mod:`.command`  the click command.
"""
