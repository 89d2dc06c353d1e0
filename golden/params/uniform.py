"""Uniform affine quantizer parameters (weights and activations; RepQ-ViT and AdaLog forms)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ._base import (
    ParamError,
    check_bool,
    check_choice,
    check_float32,
    check_int,
    check_tuple,
    params_from_dict,
    params_to_dict,
)

#: ``tensor``: one (scale, zero point); ``channel``/``head``: one per index along ``axis``.
UNIFORM_GRANULARITIES = ("tensor", "channel", "head")


@dataclasses.dataclass(frozen=True)
class UniformParams:
    """A uniform affine quantizer with integer zero points: the hardware contract.

    ``q = clamp(round(x / scale) + zero_point, qmin, qmax)`` and ``x_hat = (q - zero_point) * scale``
    (round half to even, float32). With an integer zero point, RepQ-ViT's form (``z`` added after
    rounding) and AdaLog's (``round(z)`` added) give the same codes; fractional zero points exist
    only during calibration (see :func:`golden.uniform.repq_reference` and
    :meth:`from_float_zero_point`).

    Parameters
    ----------
    bits : int
        Code width, 2..16.
    scale : float or sequence of float
        Step size(s), positive; stored as a tuple of float32 values (the references keep them in
        float32 tensors). One entry per tensor, or one per channel/head.
    zero_point : int or sequence of int
        Integer zero point(s), one per scale entry, within ``[qmin, qmax]`` so that the real
        value 0 is exactly representable and ``q - zero_point`` fits ``bits + 1`` signed bits.
    signed : bool
        Code range ``[-2**(bits-1), 2**(bits-1) - 1]`` (AdaLog's symmetric quantizer, with zero
        point 0) instead of ``[0, 2**bits - 1]`` (RepQ-ViT, AdaLog asymmetric).
    granularity : str
        ``tensor``, ``channel`` (weights per output channel, post-LN activations before
        reparameterization) or ``head`` (AdaLog's q, k, v per attention head). ``channel`` and
        ``head`` compute identically; the label records intent for the RTL and reports.
    axis : int or None
        The tensor axis indexed by the channels/heads (negative counts from the end); must be
        ``None`` for ``tensor`` granularity.
    """

    bits: int
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    signed: bool = False
    granularity: str = "tensor"
    axis: int | None = None

    def __post_init__(self) -> None:
        check_int("uniform bits", self.bits, 2, 16)
        check_bool("uniform signed", self.signed)
        check_choice("uniform granularity", self.granularity, UNIFORM_GRANULARITIES)
        scale = check_tuple("uniform scale", self.scale)
        scale = tuple(check_float32(f"uniform scale[{i}]", s, positive=True) for i, s in enumerate(scale))
        zero_point = check_tuple("uniform zero_point", self.zero_point)
        for i, z in enumerate(zero_point):
            check_int(f"uniform zero_point[{i}]", z, self.qmin, self.qmax)
        if len(zero_point) != len(scale):
            raise ParamError(
                f"uniform zero_point must have one entry per scale entry ({len(scale)}), "
                f"not {len(zero_point)}: {self.zero_point!r}"
            )
        if self.granularity == "tensor":
            if len(scale) != 1:
                raise ParamError(
                    f"uniform scale must have one entry for per-tensor granularity, not {len(scale)}"
                )
            if self.axis is not None:
                raise ParamError(f"uniform axis must be None for per-tensor granularity, not {self.axis!r}")
        else:
            check_int("uniform axis", self.axis)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero_point)

    @property
    def qmin(self) -> int:
        """Smallest code."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        """Largest code."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def channels(self) -> int:
        """Number of (scale, zero point) pairs: 1 per tensor, else the size of ``axis``."""
        return len(self.scale)

    @property
    def centered_bits(self) -> int:
        """Signed width of ``q - zero_point`` (what the MAC array multiplies): ``bits + 1``."""
        return self.bits + 1

    @classmethod
    def from_float_zero_point(
        cls,
        bits: int,
        scale: float | Sequence[float],
        zero_point: float | Sequence[float],
        **kwargs: Any,
    ) -> UniformParams:
        """Build from a calibrated real zero point, rounded half to even as AdaLog's ``round(z)``.

        The rounded zero point is clamped to the code range (a calibrated range that excludes 0
        would otherwise give an out-of-range zero point; clamping keeps 0 representable).
        """
        points = check_tuple("uniform zero_point", zero_point)
        probe = cls(bits, 1.0, 0, signed=kwargs.get("signed", False))
        reals = [check_float32(f"uniform zero_point[{i}]", z) for i, z in enumerate(points)]
        rounded = tuple(min(max(round(z), probe.qmin), probe.qmax) for z in reals)
        return cls(bits, scale, rounded, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> UniformParams:
        return params_from_dict(cls, data)
