"""Comparator-bank quantizer of the log-√2 (RepQ-ViT) and AdaLog families on a fixed-point input.

On the integer input grid both quantizers are a count of thresholds (see :mod:`golden.sqrt2`,
:mod:`golden.adalog` and the "Log codes" section of ``golden/README.md``)::

    count = #{j : xi <= theta[j]}                  j = 0 .. 2**bits - 1
    code  = bottom_code            if count == 2**bits   (xi at or below every threshold)
    code  = min(count, max_code)   otherwise

* log-√2: ``bottom_code`` is the exact zero ``2**bits``; ``max_code`` is ``2**bits - 1``
  (sqrt2_17) or ``2**bits - 2`` (sqrt2_16).
* AdaLog: ``bottom_code = max_code = clamp_code``, which is ``2**bits`` (the zero) except for
  large ``q``, where the reference's 1e-15 clamp gives tiny inputs (0 included) a nonzero code.
  ``min(count, clamp_code)`` is then exactly :func:`golden.adalog.quantize_int`.

So one core serves both families and every variant. **Design choice:** the thresholds,
``bottom_code`` and ``max_code`` are loaded at run time through the ``cfg`` stream
(:class:`hw.config.ConfigMap`; :meth:`ThresholdQuantizer.config_image` is the memory image of a
parameter object). The circuit depends only on ``bits`` and the input format (width,
signedness): one build serves every calibrated layer (any Δ, q, scale, shift, fractional bits) of
both families, and the verification plans load many parameter sets into one Verilator build.
The cost is ``2**bits`` threshold registers instead of constant comparators. The configuration
survives reset (reset empties the pipeline only). Writing ``cfg`` while values are in flight is
not supported.

The count is a population count of the comparator outputs, which is the golden definition for
any table, ordered or not (:func:`golden.fixedpoint.comparator_count`).

Stream rules: see :mod:`hw.pipeline` (transfer on valid & ready; producers hold payload until the
transfer; valid never depends on ready; consumers may look at valid first).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.params import AdaLogParams, Sqrt2Params

from .config import ConfigField, ConfigMap
from .pipeline import reject, stall_pipeline

__all__ = ["ThresholdQuantizer", "threshold_config_map", "log_code_shape", "popcount"]

#: The parameter objects a threshold quantizer implements.
THRESHOLD_PARAMS = (Sqrt2Params, AdaLogParams)


def log_code_shape(bits: int) -> Shape:
    """A log-√2 / AdaLog code on a stream: ``unsigned(bits + 1)``, exactly the golden's integer code
    (``golden/README.md``, "Log codes"): ``c < 2**bits`` is a log level and the top bit flags the
    exact zero ``2**bits``. The same shape as :func:`hw.logdecode.code_shape` gives log-√2 codes,
    so a quantizer connects to the decoders and the shift-accumulate as it is."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 16:
        raise ValueError(f"Log code bits must be an integer in [1, 16], not {bits!r}")
    return unsigned(bits + 1)


def popcount(bits: list[Value]) -> Value:
    """The number of set bits, as a balanced adder tree (``n`` inputs give ``n.bit_length()`` bits)."""
    values = list(bits)
    if not values:
        raise ValueError("popcount needs at least one bit")
    while len(values) > 1:
        pairs = [values[n] + values[n + 1] for n in range(0, len(values) - 1, 2)]
        values = pairs + (values[-1:] if len(values) % 2 else [])
    return values[0]


def threshold_config_map(params: Sqrt2Params | AdaLogParams) -> ConfigMap:
    """``threshold[0 .. 2**bits - 1]`` (the input shape), then ``bottom_code`` and ``max_code``."""
    bits, input_shape = ThresholdQuantizer.structure_of(params)
    return ConfigMap(
        [
            ConfigField("threshold", input_shape, depth=1 << bits),
            ConfigField("bottom_code", unsigned(bits + 1)),
            ConfigField("max_code", unsigned(bits + 1)),
        ]
    )


class ThresholdQuantizer(wiring.Component):
    """Log-√2 or AdaLog quantizer of one fixed-point value per cycle (comparator bank).

    Parameters
    ----------
    params : Sqrt2Params or AdaLogParams
        Only the structure is built in: ``bits``, ``input_bits`` and the input signedness
        (``AdaLogParams.input_signed``; log-√2 inputs are unsigned). Every other field reaches
        the circuit through :meth:`config_image`, so any parameter object of the same structure,
        of either family, runs on the same circuit.
    stages : int
        1: compare, count and clamp in one cycle. 2 (default): the comparator outputs are
        registered first, for timing (``2**bits`` comparators feed a ``2**bits``-input adder
        tree).

    Members
    -------
    cfg : In(stream.Signature({addr, data}))
        Configuration words (always ready), see :attr:`config_map`: ``threshold[j]``
        (``input_bits``, same signedness as the input), ``bottom_code`` and ``max_code``
        (``bits + 1`` each). They survive reset.
    i : In(stream.Signature(unsigned(input_bits) or signed(input_bits)))
        The grid value ``xi``.
    o : Out(stream.Signature(log_code_shape(bits)))
        The code, ``unsigned(bits + 1)``: the golden integer code (top bit = exact zero).

    Latency is ``stages`` cycles (:attr:`latency`); throughput one value per cycle, sustained.

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`Sqrt2Params` or :class:`AdaLogParams`.
    ValueError
        If ``stages`` is not 1 or 2.
    """

    def __init__(self, params: Sqrt2Params | AdaLogParams, *, stages: int = 2):
        if not isinstance(params, THRESHOLD_PARAMS):
            reject(self, TypeError(f"ThresholdQuantizer needs Sqrt2Params or AdaLogParams, not {params!r}"))
        if stages not in (1, 2) or isinstance(stages, bool):
            reject(self, ValueError(f"ThresholdQuantizer stages must be 1 or 2, not {stages!r}"))
        self._params = params
        self._stages = stages
        self._input_shape = self.structure_of(params)[1]
        self._config_map = threshold_config_map(params)
        super().__init__(
            {
                "cfg": In(self._config_map.signature()),
                "i": In(stream.Signature(self._input_shape)),
                "o": Out(stream.Signature(log_code_shape(params.bits))),
            }
        )

    @staticmethod
    def structure_of(params: Sqrt2Params | AdaLogParams) -> tuple[int, Shape]:
        """``(bits, input shape)``: what the circuit is built from."""
        input_signed = isinstance(params, AdaLogParams) and params.input_signed
        return params.bits, (signed if input_signed else unsigned)(params.input_bits)

    @property
    def params(self) -> Sqrt2Params | AdaLogParams:
        """The parameter object the block was built from (its structure; and the default image)."""
        return self._params

    @property
    def bits(self) -> int:
        return self._params.bits

    @property
    def input_shape(self) -> Shape:
        return self._input_shape

    @property
    def config_map(self) -> ConfigMap:
        return self._config_map

    @property
    def latency(self) -> int:
        """Cycles from an input transfer to its code on ``o`` (no back-pressure): ``stages``."""
        return self._stages

    @staticmethod
    def code_limits(params: Sqrt2Params | AdaLogParams) -> tuple[int, int]:
        """``(bottom_code, max_code)`` of a parameter object (see the module docstring)."""
        if isinstance(params, Sqrt2Params):
            return params.zero_code, params.max_code
        return params.clamp_code, params.clamp_code

    @staticmethod
    def config_image(params: Sqrt2Params | AdaLogParams) -> list[tuple[int, int]]:
        """The ``cfg`` words that load ``params`` into a quantizer of the same structure
        (:meth:`structure_of`); pure Python, no circuit needed."""
        if not isinstance(params, THRESHOLD_PARAMS):
            raise TypeError(f"ThresholdQuantizer config needs Sqrt2Params or AdaLogParams, not {params!r}")
        bottom_code, max_code = ThresholdQuantizer.code_limits(params)
        return threshold_config_map(params).image(
            {"threshold": params.thresholds, "bottom_code": bottom_code, "max_code": max_code}
        )

    def fits(self, params: Sqrt2Params | AdaLogParams) -> bool:
        """Whether ``params`` has this circuit's structure, so its :meth:`config_image` applies."""
        return isinstance(params, THRESHOLD_PARAMS) and self.structure_of(params) == self.structure_of(
            self._params
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        n_codes = self._params.n_codes
        config = self._config_map.elaborate(m, self.cfg, reset_less=True)

        enable = stall_pipeline(m, self.i, self.o, self._stages)
        # Bit j: xi <= theta[j] (signed or unsigned compare, as the input shape says).
        below = Signal(n_codes)
        m.d.comb += below.eq(Cat(*(self.i.payload <= threshold for threshold in config["threshold"])))
        if self._stages == 2:
            # Register the thermometer bits so that compare and count are in different cycles.
            below_stage = Signal(n_codes)
            with m.If(enable):
                m.d.sync += below_stage.eq(below)
            below = below_stage

        count = Signal(range(n_codes + 1))
        m.d.comb += count.eq(popcount([below[j] for j in range(n_codes)]))
        code = Signal(self._params.bits + 1)
        capped = Mux(count > config["max_code"], config["max_code"], count)
        m.d.comb += code.eq(Mux(count == n_codes, config["bottom_code"], capped))
        with m.If(enable):
            m.d.sync += self.o.payload.eq(code)
        return m


def example_designs():
    """Three circuits (see :mod:`hw.registry`), each serving many parameter sets at run time.

    * ``thresholdq_u16_b4``: unsigned 16-bit probabilities, 4 bits: log-√2 (both variants) and
      AdaLog post-softmax on the default grid.
    * ``thresholdq_u24_b4``: unsigned 24-bit probabilities (``input_frac_bits = 24``), the grid
      the model uses for attention.
    * ``thresholdq_s16_b4``: signed 16-bit input with 11 fractional bits, AdaLog post-GELU.
    """
    from golden.params import ADALOG_GELU_SHIFT

    from .registry import Design

    examples = {
        "thresholdq_u16_b4": Sqrt2Params("sqrt2_17", bits=4, delta=0.5),
        "thresholdq_u24_b4": Sqrt2Params("sqrt2_17", bits=4, delta=0.5, input_bits=24, input_frac_bits=24),
        "thresholdq_s16_b4": AdaLogParams(
            bits=4,
            q=37,
            scale=2.0,
            shift=ADALOG_GELU_SHIFT,
            input_bits=16,
            input_frac_bits=11,
            input_signed=True,
        ),
    }
    return [
        Design(
            name=name, block="threshold_quant", params=params, build=lambda p=params: ThresholdQuantizer(p)
        )
        for name, params in examples.items()
    ]
