"""ProxylessNAS / Once-for-All latency lookup tables (YAML), both ways, in two dialects.

Each entry maps a key to ``mean`` (ms), one of ``var`` or ``std`` (the spread; exactly one) and
optionally ``count``. The key grammar is ``TYPE-input:HxWxC-output:HxWxC`` (``Logits``:
``-output:CLASSES``); ``expanded_conv`` keys add ``-expand:E-kernel:K-stride:S-idskip:0|1``.

Dialect ``proxyless`` (ProxylessNAS and Once-for-All's ProxylessNAS/MobileNetV2 tables): types
``Conv``, ``expanded_conv`` (``expand:`` is the expansion *ratio*), ``Conv_1``, ``Logits``.
``Conv`` → ``stem`` (3x3); ``expanded_conv`` → ``mbconv``; ``Conv_1`` → ``pwconv`` (the feature-mix
1x1); ``Logits`` → ``head`` without feature mix (pooling + classifier). hwlat networks end in one
``head`` op (feature mix + pooling + classifier), so each chaining ``Conv_1`` + ``Logits`` pair is
also imported as that ``head`` op, with the two means summed.

Dialect ``ofa-mbv3`` (Once-for-All's MobileNetV3 tables): ``expanded_conv`` keys end in
``-se:0|1-hs:0|1`` and ``expand:`` is the *mid-channel count*; the tail is ``Conv_1`` (final expand,
1x1 at the last resolution), ``AvgPool2D`` (to 1x1), ``Conv_2`` (feature mix, 1x1 on 1x1) and
``Logits`` (input 1x1xC). OFA sums Conv + every expanded_conv + Conv_1 + AvgPool2D + Conv_2 + Logits.
Mapping: ``Conv`` → ``stem`` (act hswish); ``expanded_conv`` → ``mbconv`` with ``expand = mid / cin``
and act ``hswish`` (hs:1) or ``relu`` (hs:0, the MobileNetV3's other activation); ``Conv_1`` and
``Conv_2`` → ``pwconv`` (act hswish; ``Conv_2`` at 1x1); ``AvgPool2D`` → ``gap``; ``Logits`` →
``linear``. Every entry maps to one op of its own, and no ``head`` is composed: hwlat's ``head``
(mix + pool + classifier) has no layer after its pooling, the MobileNetV3 tail has ``Conv_2``.

Some well-formed entries name a layer no hwlat op kind computes exactly (:class:`UnmappedLutEntry`):
an ``expanded_conv`` with squeeze-and-excite (``se:1``: hwlat's ``mbconv`` has none), a mid-channel
count that is not a whole multiple of the input channels or an expansion ratio, kernel or stride
``mbconv`` does not allow (ratios 1, 3, 6 today; OFA's MobileNetV3 also uses 4), or ``idskip:0``
where the shapes allow the identity shortcut hwlat's ``mbconv`` always adds. (An SE block cannot be
imported as ``mbconv`` + ``se`` either: the table holds one mean for the whole block.) Importing refuses a
table with such entries (naming how many, why, and one key of each) unless told to skip them; then
it imports the rest and reports what it left out. It never maps one to a near op.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwlat.measure import Measurement
from hwlat.ops import KINDS, OpSpec, conv_out

__all__ = [
    "DIALECTS",
    "DIALECT_KINDS",
    "LUT_PROTOCOL",
    "LutImport",
    "UnmappedLutEntry",
    "check_device_name",
    "detect_dialect",
    "export_lut",
    "import_lut",
    "import_lut_report",
    "lut_key",
    "parse_lut_key",
    "read_lut",
]

LUT_PROTOCOL = "imported-lut"
PROXYLESS, MBV3 = "proxyless", "ofa-mbv3"
DIALECTS = (PROXYLESS, MBV3)
# op kinds each dialect writes a key for (``head`` is split into the dialect's tail entries)
DIALECT_KINDS: dict[str, tuple[str, ...]] = {
    PROXYLESS: ("stem", "mbconv", "pwconv", "head"),
    MBV3: ("stem", "mbconv", "pwconv", "gap", "linear", "head"),
}
_TYPES = {
    PROXYLESS: ("Conv", "expanded_conv", "Conv_1", "Logits"),
    MBV3: ("Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits"),
}
_GRAMMAR = {
    PROXYLESS: "TYPE-input:HxWxC-output:HxWxC[-expand:RATIO-kernel:K-stride:S-idskip:0|1]",
    MBV3: "TYPE-input:HxWxC-output:HxWxC[-expand:MID-kernel:K-stride:S-idskip:0|1-se:0|1-hs:0|1]",
}
_KEY = re.compile(
    r"^(?P<type>[A-Za-z_0-9]+)-input:(?P<hin>\d+)x(?P<win>\d+)x(?P<cin>\d+)"
    r"-output:(?:(?P<hout>\d+)x(?P<wout>\d+)x(?P<cout>\d+)|(?P<classes>\d+))"
    r"(?:-expand:(?P<expand>\d+)-kernel:(?P<kernel>\d+)-stride:(?P<stride>\d+)-idskip:(?P<idskip>[01])"
    r"(?:-se:(?P<se>[01])-hs:(?P<hs>[01]))?)?$"
)


class UnmappedLutEntry(ValueError):
    """A well-formed LUT key naming a layer no hwlat op kind computes exactly.

    ``reason`` says why in a few words (the same for every entry with the same cause), so an
    import can count them by reason.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"LUT key {key!r} has no hwlat op: {reason}")
        self.key = key
        self.reason = reason


def _key_dialect(m: re.Match) -> str | None:
    """The dialect one key shows by itself, or None when both share it (Conv, Conv_1, Logits)."""
    if m["se"] is not None or m["type"] in ("AvgPool2D", "Conv_2"):
        return MBV3
    if m["type"] == "expanded_conv" and m["expand"] is not None:
        return PROXYLESS
    return None


def detect_dialect(keys: Iterable[str]) -> str:
    """The dialect of a table's keys: ``ofa-mbv3`` if any key is one's own, else ``proxyless``.

    A table with keys of both dialects is refused (naming one of each); a table whose keys both
    share (only ``Conv``, ``Conv_1``, ``Logits``) is ``proxyless``.
    """
    seen: dict[str, str] = {}
    for key in keys:
        m = _KEY.match(key) if isinstance(key, str) else None
        d = _key_dialect(m) if m else None
        if d is not None:
            seen.setdefault(d, key)
    if len(seen) > 1:
        raise ValueError(
            f"the table mixes two LUT dialects: {seen[PROXYLESS]!r} is a ProxylessNAS key (expand: ratio, no se/hs), "
            f"{seen[MBV3]!r} a Once-for-All MobileNetV3 one; split it into one file per dialect"
        )
    return next(iter(seen), PROXYLESS)


def _check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"Invalid LUT dialect {dialect!r}; valid: {', '.join(DIALECTS)}")
    return dialect


def parse_lut_key(key: str, dialect: str | None = None) -> OpSpec:
    """The hwlat op for one LUT key.

    ``dialect`` is ``proxyless`` or ``ofa-mbv3``; None takes the key's own (``proxyless`` where
    both dialects share the key). Raises :class:`UnmappedLutEntry` for a well-formed key no hwlat
    op computes exactly, ValueError ("Invalid LUT key ...") for a malformed one.
    """
    m = _KEY.match(key) if isinstance(key, str) else None
    if not m:
        grammar = _GRAMMAR[_check_dialect(dialect)] if dialect else f"{_GRAMMAR[PROXYLESS]} or {_GRAMMAR[MBV3]}"
        raise ValueError(f"Invalid LUT key {key!r}: expected {grammar}")
    own = _key_dialect(m)
    d = _check_dialect(dialect) if dialect else own or PROXYLESS
    if own is not None and own != d:
        raise ValueError(f"Invalid LUT key {key!r}: a {own} key in a {d} table ({d} keys: {_GRAMMAR[d]})")
    typ = m["type"]
    if typ not in _TYPES[d]:
        raise ValueError(f"Invalid LUT key {key!r}: unknown type {typ!r}; known: {', '.join(_TYPES[d])}")
    dims = {name: int(m[name]) for name in ("hin", "win", "cin", "hout", "wout", "cout", "classes") if m[name]}
    if any(v < 1 for v in dims.values()):
        raise ValueError(f"Invalid LUT key {key!r}: every size must be >= 1")
    if (typ == "expanded_conv") != (m["expand"] is not None):
        if typ == "expanded_conv":
            raise ValueError(f"Invalid LUT key {key!r}: expanded_conv needs {_GRAMMAR[d].split('[')[1][:-1]}")
        raise ValueError(f"Invalid LUT key {key!r}: only expanded_conv keys have -expand:...-idskip:")
    if typ == "Logits":
        if "classes" not in dims:
            raise ValueError(f"Invalid LUT key {key!r}: Logits output must be the class count")
    elif "classes" in dims:
        raise ValueError(f"Invalid LUT key {key!r}: {typ} output must be HxWxC")
    try:
        return _op(key, d, typ, m, dims)
    except UnmappedLutEntry:
        raise
    except ValueError as exc:  # an OpSpec rule (a size limit, a kernel larger than its input)
        if str(exc).startswith("Invalid LUT key"):
            raise
        raise ValueError(f"Invalid LUT key {key!r}: {exc}") from None


def _op(key: str, d: str, typ: str, m: re.Match, dims: dict[str, int]) -> OpSpec:
    hin, win, cin = dims["hin"], dims["win"], dims["cin"]
    hswish = "hswish" if d == MBV3 else "relu6"  # the MobileNetV3's stem, final expand and mix use h-swish
    if typ == "Logits":
        if d == PROXYLESS:
            return OpSpec("head", cin=cin, cout=dims["classes"], h=hin, w=win)
        if (hin, win) != (1, 1):
            raise ValueError(f"Invalid LUT key {key!r}: a MobileNetV3 Logits input is 1x1xC (after AvgPool2D)")
        return OpSpec("linear", cin=cin, cout=dims["classes"])
    hout, wout, cout = dims["hout"], dims["wout"], dims["cout"]

    def same_size() -> None:
        if (hin, win) != (hout, wout):
            raise ValueError(f"Invalid LUT key {key!r}: a {typ} keeps its {hin}x{win} size, output says {hout}x{wout}")

    if typ == "Conv":
        stride = max(1, round(hin / hout))
        op = OpSpec("stem", cin=cin, cout=cout, h=hin, w=win, kernel=3, stride=stride, act=hswish)
        if op.out_hw != (hout, wout):
            ho, wo = op.out_hw
            raise ValueError(f"Invalid LUT key {key!r}: a 3x3 conv of {hin}x{win} gives {ho}x{wo}, not {hout}x{wout}")
        return op
    if typ == "Conv_1":
        same_size()
        return OpSpec("pwconv", cin=cin, cout=cout, h=hin, w=win, act=hswish)
    if typ == "Conv_2":
        if (hin, win, hout, wout) != (1, 1, 1, 1):
            raise ValueError(f"Invalid LUT key {key!r}: Conv_2 (the feature mix after AvgPool2D) is 1x1 in and out")
        return OpSpec("pwconv", cin=cin, cout=cout, h=1, w=1, act=hswish)
    if typ == "AvgPool2D":
        if (hout, wout, cout) != (1, 1, cin):
            raise ValueError(f"Invalid LUT key {key!r}: AvgPool2D output must be 1x1x{cin} (global pooling)")
        return OpSpec("gap", cin=cin, h=hin, w=win)
    # expanded_conv
    kernel, stride, idskip = int(m["kernel"]), int(m["stride"]), int(m["idskip"])
    if kernel < 1 or stride < 1 or int(m["expand"]) < 1:
        raise ValueError(f"Invalid LUT key {key!r}: expand, kernel and stride must be >= 1")
    if (conv_out(hin, kernel, stride), conv_out(win, kernel, stride)) != (hout, wout):
        raise ValueError(f"Invalid LUT key {key!r}: stride {stride} does not match {hin}x{win} -> {hout}x{wout}")
    skip_fits = stride == 1 and cin == cout
    if idskip and not skip_fits:
        raise ValueError(f"Invalid LUT key {key!r}: idskip:1 but the shapes do not allow an identity skip")
    if d == MBV3:
        mid = int(m["expand"])
        if m["se"] == "1":
            raise UnmappedLutEntry(key, "se:1 (squeeze-and-excite; hwlat's mbconv has none)")
        if mid % cin:
            raise UnmappedLutEntry(key, "expand: (mid channels) not a whole multiple of the input channels")
        expand = mid // cin
        act = "hswish" if m["hs"] == "1" else "relu"
    else:
        expand, act = int(m["expand"]), "relu6"
    allowed = dict(KINDS.get("mbconv").allowed)
    for name, value in (("expand", expand), ("kernel", kernel), ("stride", stride)):
        if name in allowed and value not in allowed[name]:
            what = "expansion ratio" if name == "expand" else name
            raise UnmappedLutEntry(key, f"{what} {value} (mbconv allows {', '.join(map(str, allowed[name]))})")
    if skip_fits and not idskip:
        raise UnmappedLutEntry(key, "idskip:0 where hwlat's mbconv adds the identity shortcut")
    return OpSpec("mbconv", cin=cin, cout=cout, h=hin, w=win, kernel=kernel, stride=stride, expand=expand, act=act)


def lut_key(op: OpSpec, dialect: str = PROXYLESS) -> str:
    """The LUT key of an hwlat op in ``dialect``.

    ``proxyless``: stem, mbconv, pwconv, head without mid. ``ofa-mbv3``: stem, mbconv (``hs:1`` for
    act hswish, ``hs:0`` for any other, as OFA's own keys), pwconv (``Conv_2`` at 1x1, else
    ``Conv_1``), gap (``AvgPool2D``), linear (``Logits``); :func:`export_lut` splits heads.
    """
    _check_dialect(dialect)
    ho, wo = op.out_hw
    io = f"-input:{op.h}x{op.w}x{op.cin}-output:{ho}x{wo}x{op.cout}"
    if op.kind == "stem":
        return "Conv" + io
    if dialect == MBV3:
        if op.kind == "mbconv":
            tail = f"-idskip:{int(op.has_skip)}-se:0-hs:{int(op.act == 'hswish')}"
            return f"expanded_conv{io}-expand:{op.hidden}-kernel:{op.kernel}-stride:{op.stride}{tail}"
        if op.kind == "pwconv":
            return ("Conv_2" if (op.h, op.w) == (1, 1) else "Conv_1") + io
        if op.kind == "gap":
            return f"AvgPool2D-input:{op.h}x{op.w}x{op.cin}-output:1x1x{op.cin}"
        if op.kind == "linear":
            return f"Logits-input:1x1x{op.cin}-output:{op.cout}"
        raise ValueError(
            f"op {op.key} has no Once-for-All MobileNetV3 LUT key (kinds: stem, mbconv, pwconv, gap, linear; "
            "export_lut splits a head into Conv_1, AvgPool2D and Logits)"
        )
    if op.kind == "pwconv":
        return "Conv_1" + io
    if op.kind == "mbconv":
        return f"expanded_conv{io}-expand:{op.expand}-kernel:{op.kernel}-stride:{op.stride}-idskip:{int(op.has_skip)}"
    if op.kind == "head" and not op.mid:
        return f"Logits-input:{op.h}x{op.w}x{op.cin}-output:{op.cout}"
    raise ValueError(f"op {op.key} has no ProxylessNAS LUT key (kinds: stem, mbconv, pwconv, head without mid)")


_DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_device_name(name: str) -> str:
    """A LUT's device name becomes part of a device key: letters, digits, '-', '_' and '.' only."""
    if not isinstance(name, str) or not _DEVICE_NAME.fullmatch(name):
        raise ValueError(
            f"Invalid LUT device name {name!r}: use letters, digits, '-', '_' and '.' only "
            "(starting with a letter or digit), e.g. pixel1-tflite"
        )
    return name


def read_lut(path: str | Path, max_mb: float | None = None) -> dict[str, dict[str, float]]:
    """Load a LUT YAML (safely: plain data only), refusing files over ``max_mb`` (default 20 MB, HWLAT_MAX_INPUT_MB)."""
    import yaml

    from hwlat.store import check_input_size

    path = Path(path)
    check_input_size(path, "lut", max_mb)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text (UTF-8) file, so not a latency lookup table ({exc.reason})") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # safe either way: builds plain data, runs nothing
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "python/" in str(exc) or "constructor for the tag" in str(exc):
            raise ValueError(
                f"{path}{where}: YAML tag not allowed in a latency lookup table ({problem}); "
                "only plain mappings of numbers are read, nothing was run"
            ) from None
        raise ValueError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: not a latency lookup table (expected a YAML mapping of key -> {{mean: ms}})")
    for key, entry in data.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: entry {key!r}: the key must be text (a LUT key)")
        if not isinstance(entry, dict) or "mean" not in entry:
            raise ValueError(f"{path}: entry {key!r} has no 'mean'")
    return data


def _number(path: Path, key: str, name: str, value: Any, whole: bool = False) -> float:
    """A LUT entry's ``mean``/``std``/``var``/``count``: a finite number >= 0 (whole for ``count``)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    if ok and whole and value != int(value):
        ok = False
    if not ok:
        kind = "a whole number >= 0" if whole else "a finite number >= 0"
        raise ValueError(f"{path}: entry {key!r}: {name}={value!r} must be {kind}; nothing was imported")
    return float(value)


def _entry_stats(path: Path, key: str, e: dict[str, Any]) -> tuple[float, float, int]:
    """(mean, std, count) of one entry, every number checked; exactly one of ``var``/``std``."""
    mean = _number(path, key, "mean", e["mean"])
    spread = {name: _number(path, key, name, e[name]) for name in ("std", "var") if name in e}
    count = int(_number(path, key, "count", e.get("count", 1), whole=True))
    if len(spread) != 1:
        which = "both 'var' and 'std'" if spread else "neither 'var' nor 'std'"
        raise ValueError(
            f"{path}: entry {key!r} has {which}: give exactly one spread (ProxylessNAS tables write var, "
            "Once-for-All MobileNetV3 ones std; 'std: 0' if unknown); nothing was imported"
        )
    std = spread["std"] if "std" in spread else math.sqrt(spread["var"])
    return mean, std, count


def _measurement(op: OpSpec, device_key: str, mean: float, std: float, count: int) -> Measurement:
    half = 1.96 * std / math.sqrt(count) if count > 1 else 0.0
    return Measurement(
        op_key=op.key,
        device_key=device_key,
        protocol=LUT_PROTOCOL,
        kind=op.kind,
        n=count,
        median_ms=mean,
        mean_ms=mean,
        std_ms=std,
        p5_ms=max(mean - 1.645 * std, 0.0),
        p95_ms=mean + 1.645 * std,
        iqr_ms=1.349 * std,
        ci_low_ms=mean - half,
        ci_high_ms=mean + half,
        rounds=1,
        round_medians_ms=(mean,),
        stable=True,
        loadavg=float("nan"),
        wall_s=0.0,
    )


@dataclass(frozen=True)
class LutImport:
    """What :func:`import_lut_report` did: rows added, the dialect read, and the entries left out.

    ``skipped`` holds ``(reason, keys)`` pairs, one per reason, most frequent first.
    """

    path: Path
    dialect: str
    entries: int
    added: int
    skipped: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def n_skipped(self) -> int:
        return sum(len(keys) for _, keys in self.skipped)

    def skipped_text(self) -> str:
        """'12 with se:1 (...), 4 with ...' (empty when nothing was skipped)."""
        return "; ".join(f"{len(keys)} with {reason}, e.g. {keys[0]}" for reason, keys in self.skipped)


def _group(unmapped: list[UnmappedLutEntry]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    groups: dict[str, list[str]] = {}
    for u in unmapped:
        groups.setdefault(u.reason, []).append(u.key)
    return tuple(sorted(((r, tuple(k)) for r, k in groups.items()), key=lambda g: -len(g[1])))


def import_lut_report(
    path: str | Path,
    store,
    device_name: str,
    max_mb: float | None = None,
    *,
    dialect: str = "auto",
    skip_unmapped: bool = False,
) -> LutImport:
    """Add a LUT's entries to ``store`` as device ``lut/.../name=DEVICE_NAME``; returns what it did.

    ``dialect``: ``auto`` (from the keys, :func:`detect_dialect`), ``proxyless`` or ``ofa-mbv3``.
    The LUT's mean is stored as both mean and median (a LUT has no median); ``var`` or ``std``
    gives the spread, ``count`` the sample count. Every entry is checked before anything is
    written, and all rows (and the device record) go in one transaction: a bad entry leaves the
    table as it was. Entries no hwlat op computes exactly (:class:`UnmappedLutEntry`) make the
    import fail, naming how many and why, unless ``skip_unmapped``: then the others are imported
    and the skipped ones listed in :attr:`LutImport.skipped`.
    """
    from hwlat.devices import DeviceInfo, DeviceSpec
    from hwlat.store import BadRow, check_measurement

    check_device_name(device_name)
    if dialect != "auto":
        _check_dialect(dialect)
    path = Path(path)
    entries = read_lut(path, max_mb)
    try:
        d = detect_dialect(entries) if dialect == "auto" else dialect
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}; nothing was imported") from None
    rows: list[tuple[OpSpec, float, float, int]] = []
    unmapped: list[UnmappedLutEntry] = []
    source: dict[OpSpec, str] = {}
    for key, e in entries.items():
        op = None
        try:
            op = parse_lut_key(key, d)
        except UnmappedLutEntry as exc:
            unmapped.append(exc)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}; nothing was imported") from None
        stats = _entry_stats(path, key, e)  # skipped entries are checked too: bad numbers are never skipped
        if op is None:
            continue
        if op in source:
            raise ValueError(
                f"{path}: entries {source[op]!r} and {key!r} are the same op ({op.key}); nothing was imported"
            )
        source[op] = key
        rows.append((op, *stats))
    skipped = _group(unmapped)
    if unmapped and not skip_unmapped:
        n_ok = len(entries) - len(unmapped)
        raise ValueError(
            f"{path}: {len(unmapped)} of {len(entries)} entries ({d} dialect) have no hwlat op: "
            + "; ".join(f"{len(keys)} with {reason}, e.g. {keys[0]!r}" for reason, keys in skipped)
            + f"; nothing was imported. Skip them to import the other {n_ok} (--skip-unmapped, skip_unmapped=True)"
        )
    if not rows:
        raise ValueError(f"{path}: every one of its {len(entries)} entries has no hwlat op; nothing was imported")
    if d == PROXYLESS:
        mixes = [r for r in rows if r[0].kind == "pwconv"]
        logits = [r for r in rows if r[0].kind == "head"]
        for mix, mix_ms, mix_std, mix_n in mixes:  # Conv_1 + Logits -> one hwlat head op
            for lg, lg_ms, lg_std, lg_n in logits:
                if lg.cin == mix.cout and (lg.h, lg.w) == (mix.h, mix.w):
                    try:
                        head = OpSpec("head", cin=mix.cin, mid=mix.cout, cout=lg.cout, h=mix.h, w=mix.w, act=mix.act)
                    except ValueError as exc:
                        raise ValueError(
                            f"{path}: {lut_key(mix)} + {lut_key(lg)}: {exc}; nothing was imported"
                        ) from None
                    rows.append((head, mix_ms + lg_ms, math.hypot(mix_std, lg_std), min(mix_n, lg_n)))
    spec = DeviceSpec("lut", options=(("name", device_name),))
    extra = (("source", str(path)),)
    if d == MBV3:  # the ProxylessNAS record stays as it always was
        extra += (("dialect", d), ("skipped_entries", str(len(unmapped))))
    info = DeviceInfo("lut", spec.key, device_name, "imported lookup table", path.name, 1, extra=extra)
    measurements = [_measurement(op, spec.key, ms, sd, n) for op, ms, sd, n in rows]
    for m in measurements:
        try:
            check_measurement(m)
        except BadRow as exc:
            raise ValueError(f"{path}: entry for {m.op_key}: {exc}; nothing was imported") from None
    with store.transaction():
        info_id = store.add_device(info)
        added = sum(store.add(m, info_id) for m in measurements)
    return LutImport(path, d, len(entries), added, skipped)


def import_lut(
    path: str | Path,
    store,
    device_name: str,
    max_mb: float | None = None,
    *,
    dialect: str = "auto",
    skip_unmapped: bool = False,
) -> int:
    """:func:`import_lut_report`, returning only the number of rows added."""
    return import_lut_report(path, store, device_name, max_mb, dialect=dialect, skip_unmapped=skip_unmapped).added


def export_lut(predictor, ops: Iterable[OpSpec], path: str | Path, dialect: str = PROXYLESS) -> Path:
    """Write the predictor's latency of each op as a lookup table in ``dialect``.

    ``proxyless`` (entries ``count``/``mean``/``var``): ``head`` ops with a feature mix are split
    into ``Conv_1`` (the predicted ``pwconv``, when the predictor knows that kind) and ``Logits``
    (the rest of the head's prediction); without ``pwconv`` the whole head goes into ``Conv_1`` and
    ``Logits`` is 0.

    ``ofa-mbv3`` (entries ``count``/``mean``/``std``): a ``head`` is split into ``Conv_1`` (its mix,
    when it has one), ``AvgPool2D`` and ``Logits``, each the predicted ``pwconv``/``gap`` where
    the predictor knows the kind (capped so the parts never pass the head's total), ``Logits``
    the rest. hwlat's head has no feature mix after its pooling, so it writes no ``Conv_2``:
    ``Conv_2`` entries come from ``pwconv`` ops at 1x1 in ``ops``. Every activation other than
    hswish is written ``hs:0``, as OFA's own keys do (it imports back as relu); ``Conv``, ``Conv_1``
    and ``Conv_2`` keys carry no activation (they import back as hswish, the MobileNetV3's).

    Either way the network totals that ProxylessNAS / OFA code sums from the table equal hwlat's.
    Two different ops with one key (e.g. mbconv relu and relu6 in ``ofa-mbv3``) are refused.
    """
    import yaml

    _check_dialect(dialect)
    spread = "std" if dialect == MBV3 else "var"
    entries: dict[str, dict[str, Any]] = {}
    owner: dict[str, OpSpec] = {}

    def put(op: OpSpec, ms: float, part: bool = False) -> None:
        key = lut_key(op, dialect)
        if not part:
            if key in owner and owner[key] != op:
                raise ValueError(
                    f"ops {owner[key].key} and {op.key} have the same {dialect} LUT key {key!r}; export one of them"
                )
            owner[key] = op
        entries[key] = {"count": 0, "mean": float(ms), spread: 0.0}  # a head's parts win: totals stay hwlat's

    def known(op: OpSpec) -> float | None:
        return float(predictor.predict([op])[0]) if op.kind in predictor.models_ else None

    ops = list(ops)

    def whole(op: OpSpec) -> bool:  # an op written as one entry; heads are split (but a mix-less head in proxyless)
        return op.kind != "head" or (dialect == PROXYLESS and not op.mid)

    plain = [op for op in ops if whole(op)]
    for op in plain:
        lut_key(op, dialect)  # refuse an op without a key before predicting anything
    for op, ms in zip(plain, predictor.predict(plain) if plain else []):
        put(op, ms)
    heads = [op for op in ops if not whole(op)]
    tails: list[tuple[OpSpec, float]] = []
    for op, total in zip(heads, predictor.predict(heads) if heads else []):
        total = float(total)
        width = op.mid or op.cin
        if dialect == PROXYLESS:
            mix = OpSpec("pwconv", cin=op.cin, cout=op.mid, h=op.h, w=op.w, act=op.act)
            mix_ms = known(mix)
            mix_ms = total if mix_ms is None else mix_ms
            tails += [
                (mix, min(mix_ms, total)),
                (OpSpec("head", cin=op.mid, cout=op.cout, h=op.h, w=op.w), max(total - mix_ms, 0.0)),
            ]
            continue
        left = total
        if op.mid:
            mix = OpSpec("pwconv", cin=op.cin, cout=op.mid, h=op.h, w=op.w, act=op.act)
            mix_ms = known(mix)
            mix_ms = left if mix_ms is None else min(mix_ms, left)
            tails.append((mix, mix_ms))
            left -= mix_ms
        pool = OpSpec("gap", cin=width, h=op.h, w=op.w)
        pool_ms = min(max(known(pool) or 0.0, 0.0), left)  # no gap model: the pooling's share stays in Logits
        tails += [(pool, pool_ms), (OpSpec("linear", cin=width, cout=op.cout), left - pool_ms)]
    for op, ms in tails:
        put(op, ms, part=True)
    path = Path(path)
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path
