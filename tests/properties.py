"""Property-based tests in two sizes: a few examples in the default run, many more
with the slow tests (`uv run pytest -m slow`), so that the default suite keeps to
its time budget without giving up the longer search."""

from collections.abc import Callable

import pytest
from hypothesis import given, settings


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
