import os

# The suite compiles thousands of small programs and runs each a few times, so
# XLA's optimisation passes cost more than they save: without them the suite
# takes 0.89x as long (504 against 568 s on 2 cores). They change speed, not
# results. Set in the environment, so that the notebook kernels and subprocesses
# the tests start inherit it; `JAX_DISABLE_MOST_OPTIMIZATIONS=0` turns it off.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update(
    "jax_disable_most_optimizations",
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"].lower() in ("1", "true"),
)

# Accuracy checks compare against dense JAX derivatives; float64 keeps structural
# zeros from being confused with round-off. Tests that want float32 ask for it.
jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# Modules of long single tests (notebook kernels, 2·10⁵-unknown solves): run first,
# so that the workers share out the short tests around them instead of one worker
# finishing the suite alone with a notebook.
_LONG_FIRST = (
    "test_notebooks.py",
    "test_sharding.py",
    "test_memory_cap.py",
    "test_examples.py",
)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name not in _LONG_FIRST)
    # `slow` checks and `benchmark` smoke runs run only when asked for with `-m`
    # (e.g. `-m slow`), so that the default suite stays within its time budget
    # (10 minutes on 2 cores).
    if config.option.markexpr:
        return
    for marker in ("slow", "benchmark"):
        skip = pytest.mark.skip(
            reason=f"{marker}: run with `uv run pytest -m {marker}`"
        )
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
