"""Global sparsity detection by abstract interpretation of jaxprs."""

from ._api import (
    hessian_sparsity as hessian_sparsity,
    jacobian_sparsity as jacobian_sparsity,
)
from ._deps import MAX_NNZ as MAX_NNZ, PatternTooDenseError as PatternTooDenseError
from ._interpreter import (
    INTENTIONALLY_CONSERVATIVE as INTENTIONALLY_CONSERVATIVE,
    RULES as RULES,
    UnknownPrimitiveWarning as UnknownPrimitiveWarning,
)
