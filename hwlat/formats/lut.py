"""ProxylessNAS / Once-for-All latency lookup tables (YAML), both ways.

Key grammar: ``{Conv|expanded_conv|Conv_1|Logits}-input:HxWxC-output:HxWxC``
(``Logits``: ``-output:CLASSES``), MBConv keys add
``-expand:E-kernel:K-stride:S-idskip:0|1``; each entry holds ``mean`` (ms)
and optionally ``var`` or ``std`` and ``count``.

Mapping to hwlat ops: ``Conv`` → ``stem``; ``expanded_conv`` → ``mbconv``;
``Conv_1`` → ``pwconv`` (the feature-mix 1x1); ``Logits`` → ``head`` without
feature mix (pooling + classifier). hwlat networks end in one ``head`` op
(feature mix + pooling + classifier), so each chaining ``Conv_1`` + ``Logits``
pair is also imported as that ``head`` op, with the two means summed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hwlat.measure import Measurement
from hwlat.ops import OpSpec

__all__ = ["parse_lut_key", "lut_key", "read_lut", "import_lut", "export_lut", "check_device_name", "LUT_PROTOCOL"]

LUT_PROTOCOL = "imported-lut"
_SHAPE = r"(\d+)x(\d+)x(\d+)"
_KEY = re.compile(
    rf"^(?P<type>[A-Za-z_0-9]+)-input:{_SHAPE}-output:(?:{_SHAPE}|(?P<classes>\d+))"
    r"(?:-expand:(?P<expand>\d+)-kernel:(?P<kernel>\d+)-stride:(?P<stride>\d+)-idskip:(?P<idskip>[01]))?$"
)


def parse_lut_key(key: str) -> OpSpec:
    """The hwlat op for one LUT key (raises ValueError naming what is wrong)."""
    m = _KEY.match(key)
    if not m:
        raise ValueError(
            f"Invalid LUT key {key!r}: expected TYPE-input:HxWxC-output:HxWxC[-expand:E-kernel:K-stride:S-idskip:0|1]"
        )
    typ = m["type"]
    g = m.groups()
    hin, win, cin = int(g[1]), int(g[2]), int(g[3])
    if typ == "Logits":
        if m["classes"] is None:
            raise ValueError(f"Invalid LUT key {key!r}: Logits output must be the class count")
        return OpSpec("head", cin=cin, cout=int(m["classes"]), h=hin, w=win)
    if m["classes"] is not None:
        raise ValueError(f"Invalid LUT key {key!r}: {typ} output must be HxWxC")
    hout, cout = int(g[4]), int(g[6])
    stride = max(1, round(hin / hout))
    if typ == "Conv":
        return OpSpec("stem", cin=cin, cout=cout, h=hin, w=win, kernel=3, stride=stride)
    if typ == "Conv_1":
        return OpSpec("pwconv", cin=cin, cout=cout, h=hin, w=win)
    if typ == "expanded_conv":
        if m["expand"] is None:
            raise ValueError(f"Invalid LUT key {key!r}: expanded_conv needs -expand:E-kernel:K-stride:S-idskip:0|1")
        op = OpSpec(
            "mbconv",
            cin=cin,
            cout=cout,
            h=hin,
            w=win,
            kernel=int(m["kernel"]),
            stride=int(m["stride"]),
            expand=int(m["expand"]),
        )
        if op.stride != stride:
            raise ValueError(f"Invalid LUT key {key!r}: stride {op.stride} does not match {hin} -> {hout}")
        if int(m["idskip"]) and not op.has_skip:
            raise ValueError(f"Invalid LUT key {key!r}: idskip:1 but the shapes do not allow an identity skip")
        return op
    raise ValueError(f"Invalid LUT key {key!r}: unknown type {typ!r}; known: Conv, expanded_conv, Conv_1, Logits")


def lut_key(op: OpSpec) -> str:
    """The LUT key of an hwlat op (stem, mbconv, pwconv, head without mix)."""
    ho, wo = op.out_hw
    io = f"-input:{op.h}x{op.w}x{op.cin}-output:{ho}x{wo}x{op.cout}"
    if op.kind == "stem":
        return "Conv" + io
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


def import_lut(path: str | Path, store, device_name: str, max_mb: float | None = None) -> int:
    """Add a LUT's entries to ``store`` as device ``lut/.../name=DEVICE_NAME``; returns rows added.

    The LUT's mean is stored as both mean and median (a LUT has no median);
    ``var`` or ``std`` gives the spread, ``count`` the sample count. Every
    entry is checked before anything is written, and all rows (and the device
    record) go in one transaction: a bad entry leaves the table as it was.
    """
    from hwlat.devices import DeviceInfo, DeviceSpec
    from hwlat.store import BadRow, check_measurement

    check_device_name(device_name)
    path = Path(path)
    entries = read_lut(path, max_mb)
    spec = DeviceSpec("lut", options=(("name", device_name),))
    info = DeviceInfo(
        "lut", spec.key, device_name, "imported lookup table", path.name, 1, extra=(("source", str(path)),)
    )
    rows: list[tuple[OpSpec, float, float, int]] = []
    for key, e in entries.items():
        try:
            op = parse_lut_key(key)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}; nothing was imported") from None
        mean = _number(path, key, "mean", e["mean"])
        if "std" in e:
            std = _number(path, key, "std", e["std"])
        else:
            std = math.sqrt(_number(path, key, "var", e.get("var", 0.0)))
        count = int(_number(path, key, "count", e.get("count", 1), whole=True))
        rows.append((op, mean, std, count))
    mixes = [r for r in rows if r[0].kind == "pwconv"]
    logits = [r for r in rows if r[0].kind == "head"]
    for mix, mix_ms, mix_std, mix_n in mixes:  # Conv_1 + Logits -> one hwlat head op
        for lg, lg_ms, lg_std, lg_n in logits:
            if lg.cin == mix.cout and (lg.h, lg.w) == (mix.h, mix.w):
                try:
                    head = OpSpec("head", cin=mix.cin, mid=mix.cout, cout=lg.cout, h=mix.h, w=mix.w, act=mix.act)
                except ValueError as exc:
                    raise ValueError(f"{path}: {lut_key(mix)} + {lut_key(lg)}: {exc}; nothing was imported") from None
                rows.append((head, mix_ms + lg_ms, math.hypot(mix_std, lg_std), min(mix_n, lg_n)))
    measurements = [_measurement(op, spec.key, ms, sd, n) for op, ms, sd, n in rows]
    for m in measurements:
        try:
            check_measurement(m)
        except BadRow as exc:
            raise ValueError(f"{path}: entry for {m.op_key}: {exc}; nothing was imported") from None
    with store.transaction():
        info_id = store.add_device(info)
        return sum(store.add(m, info_id) for m in measurements)


def export_lut(predictor, ops: Iterable[OpSpec], path: str | Path) -> Path:
    """Write the predictor's latency of each op as a ProxylessNAS LUT.

    ``head`` ops with a feature mix are split into ``Conv_1`` (the predicted
    ``pwconv``, when the predictor knows that kind) and ``Logits`` (the rest of
    the head's prediction); without ``pwconv`` the whole head goes into
    ``Conv_1`` and ``Logits`` is 0. Either way the network totals that
    ProxylessNAS code sums from the table equal hwlat's.
    """
    import yaml

    entries: dict[str, dict[str, Any]] = {}

    def put(op: OpSpec, ms: float) -> None:
        entries[lut_key(op)] = {"count": 0, "mean": float(ms), "var": 0.0}

    ops = list(ops)
    plain = [op for op in ops if op.kind != "head" or not op.mid]
    for op, ms in zip(plain, predictor.predict(plain) if plain else []):
        put(op, ms)
    heads = [op for op in ops if op.kind == "head" and op.mid]
    for op, total in zip(heads, predictor.predict(heads) if heads else []):
        mix = OpSpec("pwconv", cin=op.cin, cout=op.mid, h=op.h, w=op.w, act=op.act)
        mix_ms = float(predictor.predict([mix])[0]) if "pwconv" in predictor.models_ else total
        put(mix, min(mix_ms, total))
        put(OpSpec("head", cin=op.mid, cout=op.cout, h=op.h, w=op.w), max(total - mix_ms, 0.0))
    path = Path(path)
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path
