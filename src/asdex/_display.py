"""Text pictures of sparsity patterns in Unicode braille."""

from __future__ import annotations

import numpy as np

# Bit of each dot in a braille cell, indexed by (row in cell, column in cell).
# Unicode braille numbers dots 1-2-3-7 down the left and 4-5-6-8 down the right.
_DOT_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]])
_BRAILLE_BLANK = 0x2800


def braille(
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int],
    *,
    max_width: int = 40,
    max_height: int = 20,
) -> str:
    """Draw the entries `(rows[k], cols[k])` of a matrix of `shape` in braille.

    Each character holds a 4×2 block of entries. A matrix larger than
    `max_height` × `max_width` characters is scaled down; a dot then means "some
    entry in this block".
    """
    m, n = shape
    if m == 0 or n == 0:
        return f"(empty {m}×{n})"
    # Scale so that the picture fits, keeping one entry per dot when it already does.
    height = min(-(-m // 4), max_height) * 4
    width = min(-(-n // 2), max_width) * 2
    r = np.asarray(rows, dtype=np.int64)
    c = np.asarray(cols, dtype=np.int64)
    if m > height:
        r = r * height // m
    if n > width:
        c = c * width // n
    cells_h = -(-min(m, height) // 4)
    cells_w = -(-min(n, width) // 2)
    codes = np.zeros((cells_h, cells_w), dtype=np.int64)
    np.bitwise_or.at(codes, (r // 4, c // 2), _DOT_BITS[r % 4, c % 2])
    lines = ["".join(chr(_BRAILLE_BLANK + int(v)) for v in line) for line in codes]
    return "\n".join(_bracket(lines))


def _bracket(lines: list[str]) -> list[str]:
    """Surround lines with the tall matrix brackets ⎡⎢⎣ … ⎤⎥⎦."""
    if len(lines) == 1:
        return [f"[{lines[0]}]"]
    out = []
    for k, line in enumerate(lines):
        if k == 0:
            left, right = "⎡", "⎤"
        elif k == len(lines) - 1:
            left, right = "⎣", "⎦"
        else:
            left, right = "⎢", "⎥"
        out.append(f"{left}{line}{right}")
    return out


def side_by_side(left: str, right: str, arrow: str = "→") -> str:
    """Put two pictures next to each other with an arrow on the middle line."""
    a = left.splitlines()
    b = right.splitlines()
    height = max(len(a), len(b))
    wa = max((len(s) for s in a), default=0)
    a += [""] * (height - len(a))
    b += [""] * (height - len(b))
    # Like the seed README's picture: one space between, the arrow on the middle line.
    mid = (height - 1) // 2
    out = []
    for k in range(height):
        sep = f" {arrow} " if k == mid else " "
        out.append(f"{a[k].ljust(wa)}{sep}{b[k]}".rstrip())
    return "\n".join(out)
