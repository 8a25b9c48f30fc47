"""The per-event form of the feature catalogue: the same definitions, compiled into one flat Python function.

:class:`CodegenBackend` evaluates each catalogue definition symbolically, producing Python source instead of
polars expressions: ``col`` reads the current event's value, ``prev`` allocates a state slot that holds the
previous event's value of an expression, ``where`` becomes a conditional expression. The whole feature set
becomes one generated function ``update(c, out, s, first)``: O(1) per event, no allocation beyond Python floats,
no per-feature function calls. Its outputs equal the batch (polars) values at every event of a real day (tested
on AMZN level 5 and AIG ticks).

Nulls are NaN here: unoccupied levels arrive as NaN prices, and every feature with a warm-up is NaN on the first
event of a day, exactly where the batch form is null.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from lobnet.features.catalogue import CATALOGUE, DEFAULT_GROUPS, FeatureParams, define
from lobnet.io import atomic_file

NAN = float("nan")


class Src:
    """A Python source expression; operators build bigger ones."""

    __slots__ = ("code",)

    def __init__(self, code: str):
        self.code = code

    @staticmethod
    def of(x) -> str:
        if isinstance(x, Src):
            return x.code
        if isinstance(x, float) and math.isnan(x):
            return "_nan"
        return repr(x)

    def _bin(self, op: str, other, reverse: bool = False) -> Src:
        a, b = (Src.of(other), self.code) if reverse else (self.code, Src.of(other))
        return Src(f"({a} {op} {b})")

    def __add__(self, o):
        return self._bin("+", o)

    def __radd__(self, o):
        return self._bin("+", o, True)

    def __sub__(self, o):
        return self._bin("-", o)

    def __rsub__(self, o):
        return self._bin("-", o, True)

    def __mul__(self, o):
        return self._bin("*", o)

    def __rmul__(self, o):
        return self._bin("*", o, True)

    def __truediv__(self, o):
        return self._bin("/", o)

    def __rtruediv__(self, o):
        return self._bin("/", o, True)

    def __neg__(self):
        return Src(f"(-{self.code})")

    def __lt__(self, o):
        return self._bin("<", o)

    def __le__(self, o):
        return self._bin("<=", o)

    def __gt__(self, o):
        return self._bin(">", o)

    def __ge__(self, o):
        return self._bin(">=", o)

    def __eq__(self, o):  # noqa: D105 - builds source, like polars expressions do
        return self._bin("==", o)

    def __ne__(self, o):
        return self._bin("!=", o)

    __hash__ = None


class CodegenBackend:
    """The catalogue's backend interface, producing Python source for one event."""

    null = NAN

    def __init__(self, inputs: list[str]):
        self.index = {c: i for i, c in enumerate(inputs)}
        self.slots: list[str] = []  # source of the expression each prev() slot stores
        self.used_prev = False
        self.reads: set[str] = set()  # the inputs some definition reads

    def col(self, name: str) -> Src:
        self.reads.add(name)
        return Src(f"c[{self.index[name]}]")

    def prev(self, e) -> Src:
        self.used_prev = True
        code = Src.of(e)
        if code not in self.slots:
            self.slots.append(code)
        return Src(f"s[{self.slots.index(code)}]")

    @staticmethod
    def where(cond, a, b) -> Src:
        return Src(f"({Src.of(a)} if {Src.of(cond)} else {Src.of(b)})")

    @staticmethod
    def log(x) -> Src:
        return Src(f"_log({Src.of(x)})")

    @staticmethod
    def log1p(x) -> Src:
        return Src(f"_log1p({Src.of(x)})")

    @staticmethod
    def fill_null(x, value) -> Src:
        v = Src.of(x)
        return Src(f"({Src.of(value)} if {v} != {v} else {v})")  # NaN is the only value unequal to itself

    @staticmethod
    def isin(x, values: tuple) -> Src:
        return Src(f"({Src.of(x)} in {tuple(float(v) for v in values)!r})")


# The logarithms the catalogue uses, as source: executed as Python for :class:`IncrementalFeatures` and compiled
# with numba for :meth:`IncrementalFeatures.compiled`, so both forms share one definition.
_HELPERS = """
def _log(x):
    if x != x:
        return _nan
    return math.log(x) if x > 0 else (-math.inf if x == 0 else _nan)


def _log1p(x):
    if x != x:
        return _nan
    return math.log1p(x) if x > -1 else (-math.inf if x == -1 else _nan)
"""

# The compiled hot-loop function: the feature update, then the training fold's z-score written as float32 into
# the model's input buffer with ZScore.apply's rule ((x - mean) / std in float32; NaN and +-inf become 0).
_STEP = """
@njit(cache=True, error_model="numpy")
def step(c, f, s, first, mean, std, z):
    if first:
        s[:] = _nan
    update(c, f, s, first)
    for j in range(z.shape[0]):
        v = (np.float32(f[j]) - mean[j]) / std[j]
        z[j] = v if v - v == 0 else np.float32(0.0)
"""

_COMPILED: dict[str, object] = {}


def _jit_dir() -> Path:
    return Path(os.environ.get("LOBNET_JIT_CACHE") or Path.home() / ".cache" / "lobnet" / "jit")


def _compile(source: str):
    """numba-compile a generated update plus :data:`_STEP`, once per process and (through numba's cache, keyed
    by a file named after the source's hash) once per machine: compiling the full catalogue takes seconds.

    ``error_model="numpy"``: a division by zero gives inf or NaN, as in the batch (polars) form, where Python
    would raise."""
    text = (
        "import math\nimport numpy as np\nfrom numba import njit\n\n_nan = math.nan\n"
        + _HELPERS.replace("def _log", "@njit(cache=True, error_model='numpy')\ndef _log")
        + "\n\n@njit(cache=True, error_model='numpy')\n"
        + source
        + _STEP
    )
    import numba

    key = hashlib.sha256((text + numba.__version__).encode()).hexdigest()[:20]
    if key in _COMPILED:
        return _COMPILED[key]
    d = _jit_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"lobnet_features_{key}.py"
        if not path.exists():
            with atomic_file(path) as tmp:  # concurrent compilers see a whole file or none
                tmp.write_text(text)
    except OSError:  # an unwritable cache: compile without it
        path = Path(tempfile.mkdtemp(prefix="lobnet-jit-")) / f"lobnet_features_{key}.py"
        path.write_text(text)
    name = f"lobnet_features_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # numba's cache finds the helpers a cached function calls through the module name
    spec.loader.exec_module(mod)
    _COMPILED[key] = mod.step
    return mod.step


class IncrementalFeatures:
    """The feature catalogue, one event at a time.

    ``update(row, first)``: ``row`` holds the event's values in :attr:`inputs` order (floats; NaN for null
    prices), ``first`` is True on the first event of a symbol-day. Returns the preallocated output list (valid
    until the next call), in :func:`~lobnet.features.feature_names` order.
    """

    def __init__(self, params: FeatureParams, groups: list[str] | None = None):
        self.params = params
        self.groups = list(groups or DEFAULT_GROUPS)
        if bars := [g for g in self.groups if CATALOGUE[g].source != "events"]:
            raise ValueError(f"feature groups {bars} read bars, which are computed in batch only and not streamed")
        book = [f"{side}_{w}_{m}" for m in range(1, params.levels + 1) for side in ("ask", "bid") for w in ("px", "sz")]
        self.inputs = ["time", "type", "size", "direction", *book]
        B = CodegenBackend(self.inputs)
        lines, names, warm = [], [], []
        for g in self.groups:
            feature = CATALOGUE[g]
            for name, e in define(feature, B, params).items():
                if feature.warmup:
                    warm.append(len(names))
                lines.append(f"    out[{len(names)}] = {Src.of(float(e) if not isinstance(e, Src) else e)}")
                names.append(name)
        for k, code in enumerate(B.slots):
            if "s[" in code:
                raise ValueError("a prev() of a prev() is not O(1)-representable here")
            lines.append(f"    s[{k}] = {code}")
        src = "def update(c, out, s, first):\n" + "\n".join(lines) + "\n"
        if warm:
            src += "    if first:\n" + "\n".join(f"        out[{i}] = _nan" for i in warm) + "\n"
        src += "    return out\n"
        self.source = src
        env = {"_nan": NAN, "math": math}
        exec(compile(_HELPERS, "<lobnet feature helpers>", "exec"), env)  # noqa: S102
        exec(compile(src, f"<lobnet incremental features L={params.levels}>", "exec"), env)  # noqa: S102
        self._update = env["update"]
        self.names = names
        self.reads = frozenset(B.reads)
        self.n_slots = len(B.slots)
        self.out = [NAN] * len(names)
        self.state = [NAN] * self.n_slots

    def reset(self) -> None:
        """Forget the previous event (a new day)."""
        self.state[:] = [NAN] * self.n_slots

    def update(self, row: Sequence[float], first: bool = False) -> list[float]:
        if first:
            self.reset()
        return self._update(row, self.out, self.state, first)

    def compiled(self):
        """The update compiled with numba, with the z-score fused in, for the streamer's hot loop:
        ``step(c, f, s, first, mean, std, z)``.

        ``c``: the event's inputs (float64, :attr:`inputs` order; a row of :meth:`input_matrix`); ``f``: the raw
        features out (float64, length F); ``s``: the state (float64, :attr:`n_slots`, any values before a
        ``first`` event); ``mean``, ``std``: the training fold's statistics (float32, F); ``z``: the normalised
        features out (float32, F), written in place (the ONNX graph's bound input). Same source as
        :meth:`update`, about 9x faster per event at level 10 (``scripts/bench_inference.py``)."""
        return _compile(self.source)

    def input_matrix(self, events: pl.DataFrame, prefix: str = "") -> np.ndarray:
        """The events' inputs as float64 (N, len(inputs)); null prices become NaN.

        ``prefix``: the book's columns are read as ``<prefix><name>``: one symbol's Level-I state in a merged pair
        table (:func:`lobnet.prep.targets.merge_pair`, ``a_bid_px_1`` ...), whose rows carry no message. An input
        that no feature reads and the table lacks is NaN; one that a feature reads is a ValueError naming it."""
        cols = []
        for c in self.inputs:
            name = c if c == "time" or not prefix else f"{prefix}{c}"
            if name in events.columns:
                cols.append(pl.col(name).cast(pl.Float64).alias(c))
            elif c in self.reads:
                raise ValueError(f"the features {self.groups} read {name!r}, which the table lacks")
            else:
                cols.append(pl.lit(NAN, pl.Float64).alias(c))
        return events.select(cols).to_numpy()

    def run(self, events: pl.DataFrame) -> np.ndarray:
        """Replay a table event by event (resetting at every new symbol-day): (N, F) float64."""
        from lobnet.data.schema import day_slices

        X = self.input_matrix(events)
        out = np.empty((len(X), len(self.names)))
        rows = X.tolist()
        for sl in day_slices(events):
            for i in range(sl.start, sl.stop):
                out[i] = self.update(rows[i], i == sl.start)
        return out
