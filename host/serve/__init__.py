"""``bothost serve`` and ``report.html``: a read-only view of what a bot writes.

One idea per module: ``sources`` reads the bot's files (never writes, never takes the state
lock), ``views`` turns them into the page's data (pure), ``sse`` watches the files and pushes
new data, ``app`` serves the page (starlette), ``report`` writes the same page as one file,
``commands`` are the click commands; ``static/`` holds the page's own HTML, CSS and JS.
"""
