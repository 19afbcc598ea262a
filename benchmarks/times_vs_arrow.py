"""replay_feed/times.py against pyarrow's own parsing and time-zone conversion (issue 17), on the
time column of the benchmark's standard 1M-bar file (made if absent). Writes
benchmarks/results/times_vs_arrow.json.

    python benchmarks/times_vs_arrow.py
"""
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.compute as pc
from bothost_plugins.replay_feed import times as T

import benchlib as bl  # noqa: E402

path = bl.generate_dataset(1_000_000, seed=42, vol=0.6)["path"]
col = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(include_columns=["timestamp"], column_types={"timestamp": pa.string()})).column("timestamp").combine_chunks()
def best(f, n=3):
    r = []
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        r.append(time.perf_counter() - t)
    return min(r), out
res = {}
# 1. text with offsets -> UTC ns
res["handwritten parse_timestamps (offset text)"], (ns_h, ok_h) = best(lambda: T.parse_timestamps(col))
def arrow_parse():
    return pc.cast(col, pa.timestamp("ns", "UTC"))  # Arrow's ISO-8601 parser, offsets honoured
res["arrow cast string->timestamp[ns,UTC] (offset text)"], ts = best(arrow_parse)
assert np.array_equal(ts.cast(pa.int64()).to_numpy(), ns_h), "values differ"
# 2. naive wall time -> UTC (the exchange zone)
naive = pc.utf8_slice_codeunits(col, 0, 19)
res["handwritten parse_timestamps (naive text, NY tables)"], (nv_h, _) = best(lambda: T.parse_timestamps(naive))
def arrow_naive():
    t = pc.cast(naive, pa.timestamp("ns"))
    return pc.assume_timezone(t, "America/New_York", ambiguous="earliest", nonexistent="earliest")
res["arrow cast + assume_timezone (naive text)"], tsn = best(arrow_naive)
same = np.array_equal(tsn.cast(pa.int64()).to_numpy(), nv_h)
res["naive: same values on this file"] = bool(same)
wall = pc.cast(naive, pa.timestamp("ns")).cast(pa.int64()).to_numpy()
res["handwritten local_to_utc only"], _ = best(lambda: T.local_to_utc(wall))
res["arrow assume_timezone only"], _ = best(lambda: pc.assume_timezone(pa.array(wall, pa.timestamp("ns")), "America/New_York", ambiguous="earliest", nonexistent="earliest"))
# the spring-forward gap: fold=0 reads 02:30 as EST (07:30 UTC); Arrow has no such choice
gap = pa.array(["2024-03-10T02:30:00"]).cast(pa.timestamp("ns"))
h = int(T.local_to_utc(gap.cast(pa.int64()).to_numpy())[0])
a = {k: pc.assume_timezone(gap, "America/New_York", nonexistent=k).cast(pa.int64())[0].as_py() for k in ("earliest", "latest")}
res["gap 2024-03-10T02:30 handwritten (fold=0)"] = str(np.datetime64(h, "ns"))
res["gap 2024-03-10T02:30 arrow earliest / latest"] = [str(np.datetime64(v, "ns")) for v in a.values()]
for k, v in res.items():
    print(f"{k}: {v:.4f} s" if isinstance(v, float) else f"{k}: {v}")
bl.write_json(res, bl.RESULTS_DIR / "times_vs_arrow.json")
