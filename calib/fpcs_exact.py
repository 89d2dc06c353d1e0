"""Codes as the golden model computes them, and their exact dequantized values.

The FPCS objective is evaluated on the *exact* value of each code: ``(c - z) * s`` for a uniform
quantizer and ``M[c] / Dn * 2**-E[c] * s (- shift)`` for AdaLog (its LUT, as the integer datapath
uses it), in float64. The codes themselves come from the golden model's float32 arithmetic
(:func:`golden.uniform.adalog_reference`, :func:`golden.adalog.reference_forward`); the tests check
the codes against the golden ones and the values against the golden float32 outputs (equal for
uniform codes, within one float32 rounding for AdaLog). Only the float32 roundings of ``x_hat``
are left out: they move a value by at most an ulp (6e-8 relative), below the resolution at which
the reference's late refinement steps choose (see ``calib/fpcs.py``), and leaving them out makes
the fast scores exact integer computations.
"""

from __future__ import annotations

import math

import torch

from golden.params import ADALOG_R, AdaLogParams

__all__ = [
    "uniform_codes",
    "uniform_integers",
    "uniform_integers_into",
    "uniform_exact",
    "adalog_codes",
    "adalog_lut",
    "adalog_exact_table",
    "adalog_exact",
    "log_units",
]


def uniform_codes(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmax: int) -> torch.Tensor:
    """AdaLog's asymmetric codes ``clamp(round(x / s) + round(z), 0, qmax)`` in float32, exactly the
    operations of :func:`golden.uniform.adalog_reference` before it dequantizes."""
    return (torch.round(x / scale) + torch.round(zero_point)).clamp(0, qmax)


def uniform_integers(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int
) -> torch.Tensor:
    """``k = code - round(z)`` (float32 holding small integers): ``x_hat = k * s``."""
    return uniform_codes(x, scale, zero_point, 2**bits - 1) - torch.round(zero_point)


def uniform_integers_into(
    out: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int
) -> torch.Tensor:
    """:func:`uniform_integers` of ``x`` for one candidate (0-d ``scale`` and ``zero_point``) written
    into ``out`` (float32, ``x``'s shape) in place: ``clamp(round(x / s), -z, qmax - z)``, which equals
    ``clamp(round(x / s) + z, 0, qmax) - z`` (adding an integer below 2**24 is exact, and beyond
    that both clamp), in three passes without temporaries."""
    zero = float(torch.round(zero_point))
    torch.div(x, scale, out=out)
    return out.round_().clamp_(-zero, 2**bits - 1 - zero)


def uniform_exact(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """The exact dequantized value ``k * s`` in float64 (exact: a small integer times a float32)."""
    k = uniform_integers(x.to(torch.float32), scale, zero_point, bits)
    return k.to(torch.float64) * torch.as_tensor(scale, dtype=torch.float32).to(torch.float64)


def log_units(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``-log2(clamp((x + shift) / scale, 1e-15, 1)) * 37`` in float32, the reference's order; the
    AdaLog code for base ``q`` is ``round(units / q)`` (the division by an int64 ``q`` tensor)."""
    scaled = ((x + shift) / scale).clamp(min=1e-15, max=1.0)
    return -scaled.log2() * float(ADALOG_R)


def adalog_codes(units: torch.Tensor, q: int, bits: int) -> torch.Tensor:
    """Codes ``0 .. 2**bits`` (the last is the zero code, int64) from :func:`log_units`: the zero test
    and clamp of :func:`golden.adalog.reference_forward`."""
    rounded = torch.round(units / torch.tensor([q], dtype=torch.int64))
    n_codes = 2**bits
    return torch.where(rounded < n_codes, rounded.clamp(0, n_codes - 1), n_codes).to(torch.int64)


def adalog_lut(bits: int, q: int) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """``(M, E, Dn)``: the AdaLog LUT of :class:`golden.params.AdaLogParams` (level of code ``c`` =
    ``M[c] / Dn * 2**-E[c]`` times the scale)."""
    params = AdaLogParams(bits=bits, q=q)
    return params.lut_m, params.lut_e, params.dn


def adalog_exact_table(
    bits: int, q: int, scale: torch.Tensor, shift: float = 0.0, reparameterized: bool = True
) -> torch.Tensor:
    """Exact value of every AdaLog code ``0 .. 2**bits`` (float64): the LUT level ``M[c] / Dn *
    2**-E[c]`` (the integer datapath's definition; the float32 reference rounds ``M / Dn`` and the
    product) times the scale; the zero code is 0; minus ``shift`` unless ``reparameterized``."""
    mantissa, exponent, dn = adalog_lut(bits, q)
    levels = [math.ldexp(m / dn, -e) for m, e in zip(mantissa, exponent)]
    table = torch.tensor([*levels, 0.0], dtype=torch.float64)
    table[:-1] *= float(torch.as_tensor(scale, dtype=torch.float32).reshape(-1)[0])
    return table if reparameterized else table - float(torch.tensor(shift, dtype=torch.float32))


def adalog_exact(
    x: torch.Tensor, q: int, scale: torch.Tensor, shift: torch.Tensor, bits: int, reparameterized: bool = True
) -> torch.Tensor:
    """Exact dequantized AdaLog values of ``x`` (float64), with the codes of
    :func:`golden.adalog.reference_forward`."""
    codes = adalog_codes(log_units(x.to(torch.float32), scale, shift), q, bits)
    table = adalog_exact_table(bits, q, scale, float(shift.reshape(-1)[0]), reparameterized)
    return table[codes]
