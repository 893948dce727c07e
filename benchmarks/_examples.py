"""Importing this puts `examples/` on `sys.path`, once for every benchmark.

The benchmarks reuse the example scripts' problems and solves (`problems.py`,
`bratu_newton.py`, `bundle_adjustment.py`, ...), as the tests do through pytest's
`pythonpath`. Import it before them: `import _examples  # noqa: F401`.
"""

import os
import sys

EXAMPLES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"
)
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)
