import jax
import numpy as np
import pytest

# Accuracy checks compare against dense JAX derivatives; float64 keeps structural
# zeros from being confused with round-off. Tests that want float32 ask for it.
jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
