"""Property-based tests in two sizes: a few examples in the default run, many more
with the slow tests (`uv run pytest -m slow`), so that the default suite keeps to
its time budget without giving up the longer search."""

from collections.abc import Callable

import pytest
from hypothesis import given, settings

# Settings for searches that must run the same way every time, in CI and on any
# machine: no time limit per example, a fixed seed, no example database.
REPRODUCIBLE = dict(deadline=None, derandomize=True, database=None)


def property_tests(
    check: Callable, *strategies, default: int, thorough: int, **options
) -> tuple[Callable, Callable]:
    """`(test, test_thoroughly)`: `check` under `given(*strategies)` (keyword
    strategies go in `options` as `given_kwargs`), with `default` examples and,
    marked slow, with `thorough`; the other `options` go to `settings`."""
    keywords = options.pop("given_kwargs", {})

    def sized(examples: int) -> Callable:
        return settings(max_examples=examples, **options)(
            given(*strategies, **keywords)(check)
        )

    return sized(default), pytest.mark.slow(sized(thorough))
