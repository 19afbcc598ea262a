"""The ``ib_broker`` plugin: Interactive Brokers (TWS or IB Gateway) through ib_insync or ib_async.

One broker kind (``ib_broker``) and one feed kind (``ib_feed``, IB's own trades over the
broker's socket). Modules: ``config`` (settings, the live guard), ``library`` (ib_insync or
ib_async), ``convert`` (IB's objects to the host's, pure), ``codes`` (IB's message codes in a
trader's words), ``connection`` (reconnect timing, pure), ``broker``, ``feed``, ``lockstep``
(the rehearsal extension only ``bothost sim-tws`` speaks), ``plugin`` (registration).
"""
