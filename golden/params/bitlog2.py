"""BitLog2 parameters: the scheme fixes the input grid M, the half bit and every width."""

from __future__ import annotations

import dataclasses
from typing import Any

from ._base import ParamError, check_choice, check_int, params_from_dict, params_to_dict

#: scheme -> (M, half). ``xi = clamp(floor(x*M), 0, M-1)``; Half adds the bit below the leading one.
BITLOG2_SCHEMES: dict[str, tuple[int, bool]] = {
    "single_16": (32768, False),
    "single_17": (65536, False),
    "half_16": (256, True),
    "half_17": (384, True),
}


@dataclasses.dataclass(frozen=True)
class BitLog2Params:
    """BitLog2 quantizer of post-softmax attention probabilities.

    Parameters
    ----------
    scheme : str
        One of ``single_16``, ``single_17``, ``half_16``, ``half_17`` (the suffix is the number
        of representable values including zero).
    delta : int or None
        The calibrated integer divisor: the dequantized value is ``D / delta``. ``None`` before
        calibration; the quantizer itself (xi -> code) does not depend on it. The search runs
        over ``[max D of the data, m - 1]``, so any value in ``[1, m - 1]`` is valid.
    """

    scheme: str = "half_17"
    delta: int | None = None

    def __post_init__(self) -> None:
        check_choice("BitLog2 scheme", self.scheme, BITLOG2_SCHEMES)
        if self.delta is not None:
            check_int("BitLog2 delta", self.delta, 1, self.m - 1)

    @property
    def m(self) -> int:
        """Input grid: ``xi = clamp(floor(x * m), 0, m - 1)``."""
        return BITLOG2_SCHEMES[self.scheme][0]

    @property
    def half(self) -> bool:
        return BITLOG2_SCHEMES[self.scheme][1]

    @property
    def input_width(self) -> int:
        """Bits of the unsigned integer input ``xi`` (values >= m saturate to m - 1)."""
        return (self.m - 1).bit_length()

    @property
    def max_k(self) -> int:
        """Leading-one position of ``m - 1``, the largest ``k`` a code can hold."""
        return (self.m - 1).bit_length() - 1

    @property
    def k_width(self) -> int:
        return max(1, self.max_k.bit_length())

    @property
    def max_level(self) -> int:
        """The largest ``D`` value the scheme can produce (from ``xi = m - 1``)."""
        xi = self.m - 1
        k = xi.bit_length() - 1
        half = self.half and k >= 1 and (xi >> (k - 1)) & 1
        return (1 << k) + (half << (k - 1) if half else 0)

    def levels(self) -> list[int]:
        """Every representable ``D`` value, ascending, zero included."""
        values = {0}
        for k in range(self.max_k + 1):
            values.add(1 << k)
            if self.half and k >= 1:
                values.add(3 << (k - 1))
        return sorted(value for value in values if value <= self.max_level)

    def to_dict(self) -> dict[str, Any]:
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> BitLog2Params:
        return params_from_dict(cls, data)


def _check_levels() -> None:
    for scheme, count in (("single_16", 16), ("single_17", 17), ("half_16", 16), ("half_17", 17)):
        got = len(BitLog2Params(scheme).levels())
        if got != count:  # pragma: no cover - guards the table above
            raise ParamError(f"BitLog2 {scheme} has {got} levels, expected {count}")


_check_levels()
