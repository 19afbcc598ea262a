"""Small Arrow arrays built from Python values without ``pa.array``.

``pa.array`` asks pyarrow's pandas shim whether its input is a pandas object, which imports
pandas (about 0.2 s) into a run that never uses it. Building from buffers skips that check.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def strings(values: list[str]) -> pa.Array:
    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def floats(values) -> pa.Array:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    return pa.Array.from_buffers(pa.float64(), len(arr), [None, pa.py_buffer(arr)])


def values_or(arr: pa.Array, fill, dtype) -> np.ndarray:
    """``arr`` as numpy with nulls replaced by ``fill`` (what ``fill_null`` does, minus pandas)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    data = np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset: arr.offset + len(arr)]
    if arr.null_count == 0:
        return data
    data = data.copy()
    data[~valid(arr)] = fill
    return data


def valid(arr: pa.Array) -> np.ndarray:
    """The validity of each slot as a bool array (``is_valid().to_numpy()``, minus pandas)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    bits = np.unpackbits(np.frombuffer(arr.buffers()[0], dtype=np.uint8), bitorder="little")
    return bits[arr.offset: arr.offset + len(arr)].astype(bool)
