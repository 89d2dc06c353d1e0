"""Parameter objects shared by ``hw/`` (RTL generators), ``golden/`` and ``calib/``.

This package is the one source of truth for widths, rounding choices and derived integer tables
(LUT contents, thresholds): the hardware and the golden model both read them from here, never
from copied constants. It imports only the standard library, so ``hw/`` stays free of torch.

Every parameter class is a frozen dataclass that checks its fields eagerly (raising
:class:`ParamError` with a message that repeats the bad value), and round-trips through
``to_dict()`` / ``from_dict()`` for parameter files and Verilog sidecars.
"""

from ._base import ParamError, check_choice, check_int
from .adalog import ADALOG_CLAMP_MIN, ADALOG_GELU_SHIFT, ADALOG_Q_RANGE, ADALOG_R, AdaLogParams
from .bitlog2 import BITLOG2_SCHEMES, BitLog2Params
from .logav import LOG_AV_DEFAULTS, LogAVParams
from .mac import (
    MAC_LATENCY,
    SHIFT_ACC_LATENCY,
    LogCodeParams,
    MacArrayParams,
    ShiftAccParams,
    bitlog2_mant_exp,
    signed_width,
    tiled_cycles,
)
from .requant import REQUANT_MULT_BITS, RequantParams, dyadic
from .sqrt2 import SQRT2_VARIANTS, Sqrt2Params
from .uniform import UNIFORM_GRANULARITIES, UniformParams

__all__ = ["ParamError", "check_choice", "check_int", "BITLOG2_SCHEMES", "BitLog2Params"]
__all__ += [
    "ADALOG_CLAMP_MIN",
    "ADALOG_GELU_SHIFT",
    "ADALOG_Q_RANGE",
    "ADALOG_R",
    "AdaLogParams",
    "LOG_AV_DEFAULTS",
    "LogAVParams",
    "REQUANT_MULT_BITS",
    "RequantParams",
    "dyadic",
    "SQRT2_VARIANTS",
    "Sqrt2Params",
    "UNIFORM_GRANULARITIES",
    "UniformParams",
]

__all__ += [
    "MAC_LATENCY",
    "SHIFT_ACC_LATENCY",
    "LogCodeParams",
    "MacArrayParams",
    "ShiftAccParams",
    "bitlog2_mant_exp",
    "signed_width",
    "tiled_cycles",
]
