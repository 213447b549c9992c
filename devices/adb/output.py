"""Parser of TFLite/LiteRT ``benchmark_model`` output (the *parser*; ``backend.py`` is the *runner*).

``benchmark_model`` prints one statistics line per phase — first the warm-up,
then the timed runs — each after a ``Running benchmark for at least ...``
header, then a summary line, and (with ``--enable_op_profiling``) profile
tables. Every form seen in public output is read:

- stat lines ``count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929``,
  with LiteRT's `` p5=… median=… p95=…``, the degenerate ``count=0`` and
  ``count=5 curr=700(all same)``, and the oldest order ``curr=… count=… min=…``;
- ``Inference timings in us: Init: …, First inference: …, Warmup (avg): …, Inference (avg): …``
  and the older ``Average inference timings in us: Warmup: …, Init: …, Inference: …``
  (or ``no stats: …``);
- averages in exponent form (``1.68792e+06``: C++ prints 6 significant digits);
- any line prefix (``INFO: ``, none, or a logcat ``07-14 13:14:52.859 … I tflite  : ``);
- profile tables, read by their header names (``[node type]``, ``[avg ms]``, ...),
  since the columns differ between versions (older builds add ``[start]``).

All times in the output are microseconds; :func:`to_measurement` turns the
outputs of one op's invocations into a :class:`hwlat.measure.timing.Measurement` in ms.
:func:`format_stat` writes a stat line exactly as ``benchmark_model`` does
(the emulated phone uses it, and the property tests round-trip through it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hwlat.measure.timing import Z95, Measurement, Protocol, judged, median_ci

if TYPE_CHECKING:
    from hwlat.devices import Item

__all__ = [
    "BenchOutput",
    "BenchOutputError",
    "ProfileTable",
    "Stat",
    "format_stat",
    "parse",
    "parse_stat",
    "to_measurement",
]

# Asymptotic standard error of a sample median is sqrt(pi/2) * sigma / sqrt(n) for normal data.
_MEDIAN_SE = math.sqrt(math.pi / 2)
_NUMBER = re.compile(r"[+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_STAT_KEYS = ("count", "first", "curr", "min", "max", "avg", "std", "p5", "median", "p95")
_PAIR = re.compile(r"(?<![\w.])(" + "|".join(_STAT_KEYS) + r")=([^\s(]*)(\(all same\))?")
_STAT_START = re.compile(r"(?<![\w.])(?:count|curr)=")
_RUN_HEADER = "Running benchmark for at least"
_SECTION = re.compile(r"^\s*=+\s*(.*?)\s*=+\s*$")
_TIMINGS_NEW = "Inference timings in us:"
_TIMINGS_OLD = "Average inference timings in us:"
_INIT_SESSION = re.compile(r"Initialized session in\s+(" + _NUMBER.pattern + r")\s*ms")


class BenchOutputError(ValueError):
    """The text is not (complete) ``benchmark_model`` output; the message says what is missing."""


@dataclass(frozen=True)
class Stat:
    """One ``count=...`` line, in microseconds (fields missing from the line are None)."""

    count: int
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    std: float | None = None
    p5: float | None = None
    median: float | None = None
    p95: float | None = None
    all_same: bool = False

    @property
    def center_us(self) -> float | None:
        """The figure to report: the median when printed, else the mean."""
        if self.count == 0:
            return None
        if self.median is not None:
            return self.median
        if self.avg is not None:
            return self.avg
        return self.curr  # "(all same)": every run took curr

    def bounds(self) -> tuple[float, float]:
        """(p5, p95), or (min, max) when the build prints no percentiles."""
        if self.all_same or self.count == 1:
            v = self.curr if self.curr is not None else self.center_us
            return float(v), float(v)
        lo = self.p5 if self.p5 is not None else self.min
        hi = self.p95 if self.p95 is not None else self.max
        return float(lo), float(hi)


@dataclass(frozen=True)
class ProfileTable:
    """One op-profiling table: its title, section (``init``/``run``), columns and rows.

    Column names are normalised (lower case, no spaces): ``nodetype``, ``start``,
    ``first``, ``avgms``, ``%``, ``cdf%``, ``memkb``, ``timescalled``, ``name``.
    """

    title: str
    section: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str | float, ...], ...] = ()

    def column(self, name: str) -> list[str | float]:
        key = _norm_col(name)
        if key not in self.columns:
            raise KeyError(f"profile table {self.title!r} has no column {name!r}; columns: {', '.join(self.columns)}")
        i = self.columns.index(key)
        return [row[i] for row in self.rows]


@dataclass(frozen=True)
class BenchOutput:
    """Everything read from one ``benchmark_model`` invocation (times in microseconds)."""

    warmup: Stat | None = None
    timed: Stat | None = None
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    profile: tuple[ProfileTable, ...] = ()
    profile_total: Stat | None = None
    errors: tuple[str, ...] = field(default=())

    def table(self, title: str = "Run Order", section: str = "run") -> ProfileTable | None:
        for t in self.profile:
            if t.title.lower() == title.lower() and t.section == section:
                return t
        return None


# ------------------------------------------------------------------ parsing
def _num(raw: str, key: str, line: str) -> float:
    if not _NUMBER.fullmatch(raw):
        raise BenchOutputError(f"bad value {key}={raw!r} in benchmark_model stat line {line.strip()!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise BenchOutputError(f"value {key}={raw!r} out of range in stat line {line.strip()!r}")
    return value


def parse_stat(line: str) -> Stat:
    """Parse the ``count=...`` part of a line (any prefix before it is ignored)."""
    start = _STAT_START.search(line)
    if start is None:
        raise BenchOutputError(f"not a benchmark_model stat line (no count=): {line.strip()[:120]!r}")
    text = line[start.start() :]
    values: dict[str, float] = {}
    all_same = False
    pos = 0
    for m in _PAIR.finditer(text):
        if text[pos : m.start()].strip():
            raise BenchOutputError(f"unexpected text {text[pos : m.start()].strip()!r} in stat line {line.strip()!r}")
        key, raw, same = m.group(1), m.group(2), m.group(3)
        if key in values:
            raise BenchOutputError(f"{key}= twice in stat line {line.strip()!r}")
        values[key] = _num(raw, key, line)
        all_same = all_same or bool(same)
        pos = m.end()
    if text[pos:].strip():
        raise BenchOutputError(f"unexpected text {text[pos:].strip()!r} in stat line {line.strip()!r}")
    if "count" not in values:
        raise BenchOutputError(f"stat line without count=: {line.strip()!r}")
    count = values.pop("count")
    if count != int(count):
        raise BenchOutputError(f"count={count:g} is not a whole number in {line.strip()!r}")
    stat = Stat(int(count), all_same=all_same, **values)
    _check_stat(stat, line)
    return stat


def _check_stat(s: Stat, line: str) -> None:
    where = f"in stat line {line.strip()!r}"
    if s.count == 0:
        return  # count=0 (newer builds append p5=0 median=0 p95=0)
    if s.curr is None and s.avg is None and s.median is None:
        raise BenchOutputError(f"count={s.count} but no time (curr=, avg= or median=) {where}")
    if s.min is not None and s.max is not None:
        lo, hi = s.min, s.max
        if lo > hi:
            raise BenchOutputError(f"min={lo:g} > max={hi:g} {where}")
        # avg prints with 6 significant digits, so it may round just past min/max.
        slack = 1e-5 * hi + 1.0
        for key in ("first", "curr", "avg", "p5", "median", "p95"):
            v = getattr(s, key)
            if v is not None and not lo - slack <= v <= hi + slack:
                raise BenchOutputError(f"{key}={v:g} outside min..max ({lo:g}..{hi:g}) {where}")
    q = [v for v in (s.p5, s.median, s.p95) if v is not None]
    if q != sorted(q):
        raise BenchOutputError(f"percentiles out of order (p5 <= median <= p95 fails) {where}")


def _norm_col(name: str) -> str:
    return re.sub(r"\s+", "", name.strip().strip("[]")).lower()


def _cell(raw: str) -> str | float:
    text = raw.strip()
    num = text[:-1] if text.endswith("%") else text
    return float(num) if _NUMBER.fullmatch(num) else text


def _split_row(line: str, ncols: int) -> list[str]:
    if "\t" in line:
        cells = [c for c in line.split("\t")]
        while cells and not cells[0].strip():
            cells.pop(0)  # rows start with a tab
    else:  # tabs turned into spaces (copied output): columns are 2+ spaces apart
        cells = re.split(r"\s{2,}", line.strip())
    if len(cells) > ncols:  # a name containing the separator
        cells = cells[: ncols - 1] + ["\t".join(cells[ncols - 1 :])]
    return [c.strip() for c in cells]


def _timing_pairs(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        if ":" not in part:
            continue
        key, _, raw = part.rpartition(":")
        raw = raw.strip()
        if _NUMBER.fullmatch(raw):
            out[key.strip().lower()] = float(raw)
    return out


def parse(text: str) -> BenchOutput:
    """Read one invocation's output (stdout and stderr together).

    Raises :class:`BenchOutputError` when the text holds no statistics at all,
    quoting benchmark_model's own ERROR lines when it printed some.
    """
    if not isinstance(text, str):
        raise TypeError(f"benchmark_model output must be str, got {type(text).__name__}")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    phase = 0
    phase_stats: dict[int, Stat] = {}
    summary: dict[str, float] = {}
    init_ms: float | None = None
    errors: list[str] = []
    tables: list[ProfileTable] = []
    profile_total: Stat | None = None
    section = "run"
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if not stripped:
            continue
        if re.search(r"(?:^|\s|:)(?:ERROR|FATAL|E tflite|F tflite)\s*:", line) or stripped.startswith(
            ("ERROR:", "FATAL:")
        ):
            errors.append(stripped)
            continue
        if "Profiling Info for Benchmark Initialization" in line:
            section = "init"
            continue
        if "Operator-wise Profiling Info" in line:
            section = "run"
            continue
        sec = _SECTION.match(line)
        if sec and sec.group(1):
            # A table: a header line of [bracketed] column names, then rows up to a blank line.
            while i < len(lines) and not lines[i].strip():
                i += 1
            if i >= len(lines) or "[" not in lines[i]:
                continue
            columns = tuple(_norm_col(c) for c in re.findall(r"\[([^\]]*)\]", lines[i]))
            i += 1
            rows = []
            while i < len(lines) and lines[i].strip() and not _SECTION.match(lines[i]):
                cells = _split_row(lines[i], len(columns))
                if len(cells) == len(columns):
                    rows.append(tuple(_cell(c) for c in cells))
                i += 1
            tables.append(ProfileTable(sec.group(1), section, columns, tuple(rows)))
            continue
        if "Timings (microseconds):" in line:
            stat = parse_stat(line.split("Timings (microseconds):", 1)[1])
            if section == "run":
                profile_total = stat
            continue
        if "Memory (bytes):" in line or "nodes observed" in line or "Number of nodes executed" in line:
            continue
        if _RUN_HEADER in line:
            phase += 1
            continue
        if _TIMINGS_OLD in line:
            pairs = _timing_pairs(line.split(_TIMINGS_OLD, 1)[1])
            summary.setdefault("init", pairs.get("init", math.nan))
            summary.setdefault("warmup", pairs.get("warmup", math.nan))
            inference = pairs.get("inference", pairs.get("no stats", math.nan))
            summary.setdefault("inference", inference)
            continue
        if _TIMINGS_NEW in line:
            pairs = _timing_pairs(line.split(_TIMINGS_NEW, 1)[1])
            summary.setdefault("init", pairs.get("init", math.nan))
            summary.setdefault("first", pairs.get("first inference", math.nan))
            summary.setdefault("warmup", pairs.get("warmup (avg)", math.nan))
            summary.setdefault("inference", pairs.get("inference (avg)", math.nan))
            continue
        m = _INIT_SESSION.search(line)
        if m:
            init_ms = float(m.group(1))
            continue
        if _STAT_START.search(line) and "count=" in line:
            key = phase if phase else len(phase_stats) + 1
            phase_stats.setdefault(key, parse_stat(line))
    if not phase_stats and not summary and not tables:
        if errors:
            raise BenchOutputError("benchmark_model failed: " + " | ".join(errors[-3:]))
        first = next((ln.strip() for ln in lines if ln.strip()), "")
        raise BenchOutputError(
            f"no benchmark_model statistics in the output (expected 'count=...' lines); it starts with {first[:100]!r}"
        )
    if phase:
        warmup, timed = phase_stats.get(1), phase_stats.get(2)
    elif len(phase_stats) >= 2:  # no headers printed: the stat lines come in phase order
        warmup, timed = phase_stats[1], phase_stats[max(phase_stats)]
    else:
        warmup, timed = None, phase_stats.get(1)

    def get(key: str) -> float | None:
        v = summary.get(key)
        return None if v is None or math.isnan(v) else v

    init_us = get("init")
    if init_us is None and init_ms is not None:
        init_us = init_ms * 1e3
    return BenchOutput(
        warmup=warmup,
        timed=timed,
        init_us=init_us,
        first_us=get("first"),
        warmup_avg_us=get("warmup"),
        inference_avg_us=get("inference"),
        profile=tuple(tables),
        profile_total=profile_total,
        errors=tuple(errors),
    )


# ------------------------------------------------------------------ writing
def _cxx(value: float) -> str:
    """A double as C++ ``operator<<`` prints it (6 significant digits, %g)."""
    return f"{value:g}"


def format_stat(values_us: Sequence[int], percentiles: bool = True) -> str:
    """The stat line ``benchmark_model`` prints for these per-run times (integer µs).

    Mirrors ``Stat::OutputToStream`` (population std truncated to an integer)
    and ``StatWithPercentiles`` (nearest-rank percentile ``values[n * p / 100]``).
    """
    x = [int(v) for v in values_us]
    n = len(x)
    if n == 0:
        text = "count=0"
        return text + (" p5=0 median=0 p95=0" if percentiles else "")
    lo, hi = min(x), max(x)
    if lo == hi:
        text = f"count={n} curr={x[-1]}" + ("(all same)" if n > 1 else "")
    else:
        total = sum(x)
        avg = total / n
        var = int(sum(v * v for v in x) / n - avg * avg)  # ValueType (int64) variance, as in stats_calculator.h
        std = int(math.sqrt(max(var, 0)))
        text = f"count={n} first={x[0]} curr={x[-1]} min={lo} max={hi} avg={_cxx(avg)} std={std}"
    if percentiles:
        s = sorted(x)
        text += f" p5={s[n * 5 // 100]} median={s[n * 50 // 100]} p95={s[n * 95 // 100]}"
    return text


# ------------------------------------------------------------ measurement
def _round_figures(out: BenchOutput, index: int) -> tuple[int, float, float, float, float, float]:
    s = out.timed
    if s is None:
        why = "it stopped during the warm-up" if out.warmup is not None else "no stat line was printed"
        raise BenchOutputError(f"invocation {index + 1}: no statistics of the timed runs ({why})")
    if s.count == 0:
        raise BenchOutputError(f"invocation {index + 1}: the timed phase ran 0 times (count=0)")
    center = float(s.center_us)
    avg = float(s.avg) if s.avg is not None else center
    if center <= 0:  # runs are timed in whole µs: a median of 0 means below the resolution
        center = avg
    if center <= 0:
        raise BenchOutputError(
            f"invocation {index + 1}: every run took 0 µs, below benchmark_model's 1 µs resolution; "
            "measure a larger op or a network"
        )
    std = float(s.std) if s.std is not None else 0.0
    lo, hi = s.bounds()
    return s.count, center, avg, std, lo, hi


def to_measurement(
    outputs: Sequence[BenchOutput],
    *,
    item: Item,
    device_key: str,
    protocol: Protocol,
    wall_s: float,
    extra: Iterable[tuple[str, float]] = (),
    loadavg: float = float("nan"),
) -> Measurement:
    """Combine the invocations ("rounds") of one op into a Measurement (ms).

    Per invocation the phone's own statistics of the timed runs are used: the
    median when printed, else the mean. Across invocations: the median of the
    round figures; count-weighted mean; pooled std; the median of the rounds'
    p5 and p95 (min/max where the build prints no percentiles), which keeps
    p5 <= median <= p95 whatever the rounds' sizes. ``benchmark_model`` prints
    no quartiles, so ``iqr_ms`` is a normal-theory estimate, 0.41·(p95 − p5),
    or 1.349·std without percentiles (marked ``iqr_estimated=1`` in extra).

    The median's 95 % CI: with 3 or more rounds the order-statistic CI of the
    round figures (as the CPU protocol's rounds);
    with fewer, the normal approximation sqrt(pi/2)·sigma/sqrt(n) within the runs;
    widened by ±0.5 µs when the figures are medians of whole-µs run times.
    """

    if not outputs:
        raise BenchOutputError(f"{item.key}: no benchmark_model output to summarise")
    figs = np.array([_round_figures(o, k) for k, o in enumerate(outputs)], dtype=float)
    counts, centers, avgs, stds, p5s, p95s = figs.T
    n = int(counts.sum())
    med = float(np.median(centers))
    mean = float((counts * avgs).sum() / n)
    std = float(math.sqrt(max((counts * (stds**2 + (avgs - mean) ** 2)).sum() / n, 0.0)))
    if len(centers) >= 3:
        # Distribution-free: order statistics of the round figures (min..max for up to 5 rounds).
        lo, hi = median_ci(np.sort(centers))
    else:
        # Too few rounds: normal approximation within the runs, with a spread that outliers
        # cannot inflate ((p95 - p5) / 3.29 is sigma for normal data) when percentiles are printed.
        sigma = std
        if len(centers) == 1 and outputs[0].timed.p5 is not None and outputs[0].timed.p95 is not None:
            sigma = min(std, (outputs[0].timed.p95 - outputs[0].timed.p5) / 3.29) or std
        half = Z95 * _MEDIAN_SE * sigma / math.sqrt(n)
        lo, hi = med - half, med + half
        if len(centers) == 2:
            lo, hi = min(lo, *centers), max(hi, *centers)
    if any(o.timed.median is not None or o.timed.all_same for o in outputs):
        # Runs are timed in whole µs, so a median is only known to ±0.5 µs.
        lo, hi = lo - 0.5, hi + 0.5
    # No quartiles are printed: for normal data IQR = 1.349 sigma = 0.41 (p95 - p5); the
    # percentile form is used when printed, as outliers inflate std far more.
    if all(o.timed.p5 is not None and o.timed.p95 is not None for o in outputs):
        iqr = 0.41 * float(np.median(p95s - p5s))
    else:
        iqr = 1.349 * std
    us = 1e-3  # µs -> ms
    m = Measurement(
        op_key=item.key,
        device_key=device_key,
        protocol=protocol.key,
        kind=item.kind,
        n=n,
        median_ms=med * us,
        mean_ms=mean * us,
        std_ms=std * us,
        p5_ms=float(np.median(p5s)) * us,
        p95_ms=float(np.median(p95s)) * us,
        iqr_ms=iqr * us,
        ci_low_ms=max(lo, 0.0) * us,
        ci_high_ms=hi * us,
        rounds=len(outputs),
        round_medians_ms=tuple(float(c) * us for c in centers),
        stable=False,  # set by the protocol's stop rule below
        loadavg=loadavg,
        wall_s=wall_s,
        extra=tuple(sorted({**dict(extra), "iqr_estimated": 1.0}.items())),
    )
    return judged(m, protocol.stop)
