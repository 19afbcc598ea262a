"""The ``alpaca_feed`` plugin: real-time stock data from Alpaca through alpaca-py.

Modules: ``config`` (the section; keys are secrets), ``convert`` (raw stream messages to host
ticks, pure), ``hours`` (when a quiet feed is stale: XNYS sessions from exchange_calendars),
``stream`` (alpaca-py's StockDataStream with the hooks the plugin needs), ``feed`` (the Feed),
``fetch`` (``bothost data fetch``: historical bars to the replay feed's CSV or Parquet).
"""
