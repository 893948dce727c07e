"""The union of two row-aligned dependency matrices, by a merge of sorted rows.

Row `r` of the result is the sorted union of row `r` of `A` and of `B`, both
sorted and free of duplicates: one pass counts each row's union, a second writes
it. For the large unions of detection at 10⁶ elements and more (a chain of
elementwise operations on stencil slices): the five unions of a 3162² 5-point
stencil take 0.73 s so, and 1.9-3.9 s as scipy's sums of boolean CSR matrices,
whose output is allocated for the worst case and then trimmed.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _count(a_ptr, a_idx, b_ptr, b_idx, out_ptr):
    for r in range(a_ptr.shape[0] - 1):
        i, j, k = a_ptr[r], b_ptr[r], 0
        i_end, j_end = a_ptr[r + 1], b_ptr[r + 1]
        while i < i_end and j < j_end:
            if a_idx[i] < b_idx[j]:
                i += 1
            elif a_idx[i] > b_idx[j]:
                j += 1
            else:
                i += 1
                j += 1
            k += 1
        out_ptr[r + 1] = k + (i_end - i) + (j_end - j)


@numba.njit(cache=True)
def _fill(a_ptr, a_idx, b_ptr, b_idx, out_ptr, out_idx):
    for r in range(a_ptr.shape[0] - 1):
        i, j, k = a_ptr[r], b_ptr[r], out_ptr[r]
        i_end, j_end = a_ptr[r + 1], b_ptr[r + 1]
        while i < i_end and j < j_end:
            if a_idx[i] < b_idx[j]:
                out_idx[k] = a_idx[i]
                i += 1
            elif a_idx[i] > b_idx[j]:
                out_idx[k] = b_idx[j]
                j += 1
            else:
                out_idx[k] = a_idx[i]
                i += 1
                j += 1
            k += 1
        while i < i_end:
            out_idx[k] = a_idx[i]
            i += 1
            k += 1
        while j < j_end:
            out_idx[k] = b_idx[j]
            j += 1
            k += 1


def merge_rows(a_ptr, a_idx, b_ptr, b_idx) -> tuple[np.ndarray, np.ndarray]:
    """`(ptr, idx)` of the row-by-row union; `ptr` int64, `idx` of `a_idx`'s
    dtype (both inputs share it)."""
    out_ptr = np.zeros(a_ptr.shape[0], np.int64)
    _count(a_ptr, a_idx, b_ptr, b_idx, out_ptr)
    np.cumsum(out_ptr, out=out_ptr)
    out_idx = np.empty(int(out_ptr[-1]), a_idx.dtype)
    _fill(a_ptr, a_idx, b_ptr, b_idx, out_ptr, out_idx)
    return out_ptr, out_idx
