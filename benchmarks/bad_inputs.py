"""A catalogue of bad inputs, tried as a careful user would, across the CLI and the Python API (issue #12).

Every case runs in a subprocess (``python -m hwlat.cli ...`` or a small ``python -c`` snippet for the
API), in its own temporary folder, with ``HWLAT_CACHE`` and ``HOME`` pointing inside that folder, so a
crash cannot take the runner down and no case sees another's files. The files a case needs (a good
measured table, its CSV export, a fitted predictor, poisoned CSVs, crafted YAML, corrupt databases...)
are built inside its folder first, from fixtures made once with the deterministic ``fake`` backend.

For each case the runner records:

- ``rc``: the exit status (an API snippet exits 2 when the call raised a clean error, 0 when it returned).
- ``traceback``: stderr contains ``Traceback (most recent call last)``. API snippets catch only *clean*
  errors (``ValueError`` and its subclasses, ``FileNotFoundError``, ``FileExistsError``,
  ``IsADirectoryError``, ``NotADirectoryError``, ``PermissionError``, any exception class defined in
  an ``hwlat`` module, and a ``TypeError`` raised in hwlat's own source that is not an interpreter call
  error such as ``f() got an unexpected keyword argument``) and print them as ``error: Type: message``;
  anything else escapes as a traceback.
- ``one_line``: the case failed (``rc != 0``), had no traceback, and its stderr has exactly one
  *message line*: a non-empty line that is not a warning (does not start with the word ``warning``,
  case-insensitively, as ``warning: ...`` and logging's ``WARNING hwlat.x: ...`` do, nor contain
  ``Warning:`` as Python's warnings do) and is not a progress bar (a line
  holding a carriage return, or looking like ``NN%|...|``) and not argparse's ``usage:`` block (the
  ``usage:`` line and its indented continuation lines). The line must not show a numpy repr such as
  ``np.str_('x')``.
- ``changed``: files that existed in the case folder before the run (outside the cache and HOME) whose
  sha256 differs afterwards, or that were removed.
- ``left``: files the case says must not exist afterwards (e.g. the ``--db`` of a refused import into
  a new table) but do.
- ``executed``: a code-execution canary (a file named ``PWNED`` anywhere in the case folder) appeared.
- ``ok``: the case met its expectation. ``expect="error"`` (the default): ``rc != 0``, one line, nothing
  changed or left, nothing executed. ``expect="error_or_warning"`` (search targets): an error as above,
  or ``rc == 0`` with a ``warning:`` line. ``expect="ok"`` (e.g. a corrupt cache is rebuilt): ``rc == 0``
  and nothing changed or executed.

Usage::

    python benchmarks/bad_inputs.py            # the whole catalogue -> benchmarks/results/bad_inputs.{json,md}
    python benchmarks/bad_inputs.py --quick    # ~20 representative cases, results not written unless --out
    python benchmarks/bad_inputs.py --jobs 4 --only lut

The catalogue is data (``CASES``): a list of :class:`Case`, built from tables of bad values.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TIMEOUT_S = 120

# A few ops with valid keys (mbconv: cin, cout, h, w, kernel, stride, expand, act).
MB = "mbconv:cin=32,cout=48,h=56,w=56,kernel=3,stride=2,expand=3,act=relu6"
MB_HUGE = "mbconv:cin=1000000,cout=48,h=56,w=56,kernel=3,stride=2,expand=3,act=relu6"
MB_ABC = "mbconv:cin=abc,cout=48,h=56,w=56,kernel=3,stride=2,expand=3,act=relu6"

GOOD_LUT = """\
Conv-input:224x224x3-output:112x112x32:
  count: 10
  mean: 1.5
  std: 0.05
expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:3-stride:1-idskip:0:
  count: 10
  mean: 0.8
  std: 0.02
expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:3-stride:2-idskip:0:
  count: 10
  mean: 0.9
  std: 0.03
"""
LUT_ENTRY = "expanded_conv-input:56x56x24-output:56x56x24-expand:3-kernel:5-stride:1-idskip:1"


@dataclasses.dataclass
class Case:
    """One bad input.

    ``setup`` lists ``(name, maker, arg)``: files built in the case folder before the run (see ``MAKERS``).
    ``cli`` is the argument list after ``python -m hwlat.cli``; ``api`` a Python snippet (run in the case
    folder; it should call the library and may raise). ``env`` adds environment variables. ``absent``
    lists files that must not exist afterwards. ``lock`` names a table another process holds a write lock
    on during the run.
    """

    name: str
    group: str
    cli: list[str] | None = None
    api: str | None = None
    setup: list[tuple[str, str, object]] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    absent: list[str] = dataclasses.field(default_factory=list)
    expect: str = "error"
    lock: str | None = None
    quick: bool = False


# ---------------------------------------------------------------- fixtures (made once per run)


def cli(fixtures: Path, *args: str, env: dict | None = None) -> None:
    e = base_env(fixtures)
    e.update(env or {})
    r = subprocess.run(
        [sys.executable, "-m", "hwlat.cli", *args], cwd=fixtures, env=e, capture_output=True, text=True, timeout=600
    )
    if r.returncode:
        raise SystemExit(f"fixture step failed: hwlat {' '.join(args)}\n{r.stderr}")


def base_env(folder: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("HWLAT_")}
    e["HWLAT_CACHE"] = str(folder / "cache")
    e["HOME"] = str(folder / "home")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    (folder / "home").mkdir(parents=True, exist_ok=True)
    return e


def make_fixtures(fixtures: Path, need_search: bool) -> None:
    """good.db (30 fake mbconv rows), good.csv, good.parquet, good.skops(+.json), good.yaml; digits.skops."""
    fixtures.mkdir(parents=True, exist_ok=True)
    cli(fixtures, "measure", "--device", "fake", "--space", "mbconv", "--n", "30", "--db", "good.db", "-q")
    cli(fixtures, "table", "export", "--db", "good.db", "--out", "good.csv")
    cli(fixtures, "table", "export", "--db", "good.db", "--out", "good.parquet")
    cli(fixtures, "fit", "--table", "good.db", "--out", "good.skops")
    with sqlite3.connect(fixtures / "good.db") as c:  # everything in the main file, nothing in a WAL
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for side in ("good.db-wal", "good.db-shm"):
        (fixtures / side).unlink(missing_ok=True)
    (fixtures / "good.yaml").write_text(GOOD_LUT)
    if need_search:
        cli(fixtures, "measure", "--device", "fake", "--space", "digits-mbconv", "--n", "39", "--db", "digits.db", "-q")
        cli(fixtures, "fit", "--table", "digits.db", "--out", "digits.skops")


# ---------------------------------------------------------------- makers: build one file in a case folder


def _copy(fx: Path, dst: Path, arg) -> None:
    shutil.copyfile(fx / arg, dst)
    if str(arg).endswith(".skops") and (fx / f"{arg}.json").exists():
        shutil.copyfile(fx / f"{arg}.json", dst.with_name(dst.name + ".json"))


def _text(fx: Path, dst: Path, arg) -> None:
    dst.write_text(str(arg))


def _bytes(fx: Path, dst: Path, arg) -> None:
    dst.write_bytes(arg)


def _poison_csv(fx: Path, dst: Path, arg) -> None:
    """good.csv with column ``col`` of data row ``row`` (1-based, default 3) set to ``value``."""
    import csv

    col, value, *rest = arg
    row = rest[0] if rest else 3
    with open(fx / "good.csv", newline="") as f:
        rows = list(csv.reader(f))
    i = rows[0].index(col)
    rows[row][i] = value
    with open(dst, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _poison_parquet(fx: Path, dst: Path, arg) -> None:
    import pandas as pd

    col, value = arg
    df = pd.read_parquet(fx / "good.parquet")
    df[col] = df[col].astype(object)
    df.loc[2, col] = value
    if all(isinstance(v, float) for v in df[col]):
        df[col] = df[col].astype(float)
    df.to_parquet(dst)


def _drop_column(fx: Path, dst: Path, arg) -> None:
    import pandas as pd

    pd.read_csv(fx / "good.csv").drop(columns=[arg]).to_csv(dst, index=False)


def _lut(fx: Path, dst: Path, arg) -> None:
    """good.yaml plus ``arg`` appended (a bad entry, so two good ones come first)."""
    dst.write_text(GOOD_LUT + str(arg))


def _huge_lut(fx: Path, dst: Path, arg) -> None:
    """A syntactically fine LUT of ``arg`` MB."""
    entry = "Conv-input:{0}x{0}x3-output:{1}x{1}x32:\n  mean: 1.0\n"
    with open(dst, "w") as f:
        n = 0
        while f.tell() < arg * 1e6:
            f.write(entry.format(2 * (n + 1), n + 1))
            n += 1


def _big_csv(fx: Path, dst: Path, arg) -> None:
    text = (fx / "good.csv").read_text()
    head, body = text.split("\n", 1)
    with open(dst, "w") as f:
        f.write(head + "\n")
        while f.tell() < arg * 1e6:
            f.write(body)


def _flip(fx: Path, dst: Path, arg) -> None:
    """good.db with bytes flipped at ``arg`` (an offset or a list of offsets)."""
    data = bytearray((fx / "good.db").read_bytes())
    for off in arg if isinstance(arg, list) else [arg]:
        for k in range(off, min(off + 64, len(data))):
            data[k] ^= 0xA5
    dst.write_bytes(bytes(data))


def _truncate(fx: Path, dst: Path, arg) -> None:
    src, size = arg
    dst.write_bytes((fx / src).read_bytes()[:size])


def _sqlite(fx: Path, dst: Path, arg) -> None:
    """Another app's SQLite file, or one with hwlat's application id but another schema (arg: 'foreign'|'appid')."""
    with sqlite3.connect(fx / "good.db") as c:
        appid = c.execute("PRAGMA application_id").fetchone()[0]
    with sqlite3.connect(dst) as c:
        c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        c.execute("INSERT INTO notes (body) VALUES ('my notes')")
        if arg == "appid":
            c.execute(f"PRAGMA application_id = {appid}")
        if arg == "foreign-id":
            c.execute("PRAGMA application_id = 1234")
    c.close()


def _meta_edit(fx: Path, dst: Path, arg) -> None:
    """good.skops with its JSON metadata edited: ``arg`` = (field, value) or 'garbage'/'missing'."""
    shutil.copyfile(fx / "good.skops", dst)
    meta = dst.with_name(dst.name + ".json")
    if arg == "missing":
        return
    if arg == "garbage":
        meta.write_text("{ not json")
        return
    m = json.loads((fx / "good.skops.json").read_text())
    field, value = arg
    if value is None:
        m.pop(field, None)
    else:
        m[field] = value
    meta.write_text(json.dumps(m, indent=1))


def _resign(dst: Path) -> None:
    """Recompute the .json's checksums for the crafted file, as an attacker who read hwlat's source would."""
    meta_path = dst.with_name(dst.name + ".json")
    meta = json.loads(meta_path.read_text())
    meta["file_sha256"] = hashlib.sha256(dst.read_bytes()).hexdigest()
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    meta["meta_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    meta_path.write_text(json.dumps(meta, indent=1))


def _pickle_bomb(fx: Path, dst: Path, arg) -> None:
    """A pickle (not a zip) that runs ``touch PWNED`` when unpickled; with the real .json beside it."""
    payload = b"cos\nsystem\n(S'touch PWNED'\ntR."
    dst.write_bytes(payload)
    if arg in ("with-meta", "resigned"):
        shutil.copyfile(fx / "good.skops.json", dst.with_name(dst.name + ".json"))
    if arg == "resigned":
        _resign(dst)


def _skops_untrusted(fx: Path, dst: Path, arg) -> None:
    """good.skops whose schema names an untrusted type (os.system via a reduce node); real .json beside it."""
    with zipfile.ZipFile(fx / "good.skops") as z:
        names = z.namelist()
        files = {n: z.read(n) for n in names}
    schema = json.loads(files["schema.json"])
    evil = {
        "__class__": "system",
        "__module__": "posix" if os.name == "posix" else "nt",
        "__loader__": "FunctionNode",
        "content": {"module_path": "os", "function": "system"},
        "is_json": False,
    }
    if arg.startswith("reduce"):
        evil = {
            "__class__": "Popen",
            "__module__": "subprocess",
            "__loader__": "ReduceNode",
            "__reduce__": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": []},
            "content": {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {}},
        }
    schema["__evil__"] = evil
    if isinstance(schema.get("content"), dict) and "content" in schema["content"]:
        inner = schema["content"]["content"]
        if isinstance(inner, dict):
            inner["__evil__"] = evil
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    shutil.copyfile(fx / "good.skops.json", dst.with_name(dst.name + ".json"))
    if arg.endswith("-resigned"):
        _resign(dst)


def _zip(fx: Path, dst: Path, arg) -> None:
    with zipfile.ZipFile(dst, "w") as z:
        z.writestr("schema.json", str(arg))


def _empty_store(fx: Path, dst: Path, arg) -> None:
    from hwlat.store import LatencyStore

    LatencyStore(dst).close()


def _mkdir(fx: Path, dst: Path, arg) -> None:
    dst.mkdir()


def _warm_cache(fx: Path, dst: Path, arg) -> None:
    """Measure one op on onnxruntime-cpu (fills the case's cache), then truncate every cached .onnx."""
    folder = dst.parent
    e = base_env(folder)
    subprocess.run(
        [sys.executable, "-m", "hwlat.cli", "measure", "--device", "onnxruntime-cpu", "--space", "pwconv"]
        + ["--n", "1", "--db", str(dst), "-q", "--budget", "0.05"],
        cwd=folder,
        env=e,
        capture_output=True,
        timeout=600,
    )
    for p in (folder / "cache").rglob("*.onnx"):
        p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])


MAKERS = {
    "copy": _copy,
    "text": _text,
    "bytes": _bytes,
    "poison_csv": _poison_csv,
    "poison_parquet": _poison_parquet,
    "drop_column": _drop_column,
    "lut": _lut,
    "huge_lut": _huge_lut,
    "big_csv": _big_csv,
    "flip": _flip,
    "truncate": _truncate,
    "sqlite": _sqlite,
    "meta_edit": _meta_edit,
    "pickle_bomb": _pickle_bomb,
    "skops_untrusted": _skops_untrusted,
    "zip": _zip,
    "mkdir": _mkdir,
    "empty_store": _empty_store,
    "warm_cache": _warm_cache,
}

# ---------------------------------------------------------------- the catalogue

GOOD_DB = ("good.db", "copy", "good.db")
GOOD_CSV = ("good.csv", "copy", "good.csv")
GOOD_SKOPS = ("good.skops", "copy", "good.skops")
DIGITS_SKOPS = ("digits.skops", "copy", "digits.skops")

# table import: (column, bad value, what) for a poisoned third row
POISON_ROWS = [
    ("device_info_json", "not json", "device info not JSON"),
    ("device_info_json", "{", "device info truncated JSON"),
    ("device_info_json", "[1, 2]", "device info a list"),
    ("median_ms", "-1.0", "negative median"),
    ("median_ms", "inf", "infinite median"),
    ("median_ms", "nan", "NaN median"),
    ("median_ms", "", "empty median"),
    ("median_ms", "fast", "text median"),
    ("median_ms", "1e400", "overflowing median"),
    ("op_key", MB_ABC, "op key cin=abc"),
    ("op_key", "nosuchkind:cin=3,cout=4", "unknown kind"),
    ("op_key", MB_HUGE, "10^6-channel op"),
    ("op_key", "", "empty op key"),
    ("op_key", "mbconv:cin=32", "op key missing fields"),
    ("n", "1.5", "n=1.5"),
    ("n", "-3", "n negative"),
    ("n", "abc", "n text"),
    ("stable", "maybe", "stable=maybe"),
    ("stable", "2", "stable=2"),
    ("device_key", "", "empty device key"),
    ("device_key", "fake/t1/b1/fp32\n", "device key with a newline"),
    ("kind", "conv", "kind disagrees with op key"),
    ("round_medians_ms", "[1, 2", "round medians not JSON"),
    ("extra_json", "[1, 2", "extra not JSON"),
    ("mean_ms", "-inf", "mean -inf"),
    ("std_ms", "-1", "negative std"),
    ("rounds", "-1", "negative rounds"),
]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def build_cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.append

    # ---- item 1: fit --out onto files that are not our predictors
    for name, setup, out, extra in [
        ("fit-out-onto-other-table", [("other.db", "copy", "good.db")], "other.db", []),
        ("fit-out-onto-other-table-force", [("other.db", "copy", "good.db")], "other.db", ["--force"]),
        ("fit-out-onto-own-table", [], "good.db", []),
        ("fit-out-onto-own-table-force", [], "good.db", ["--force"]),
        ("fit-out-onto-csv", [GOOD_CSV], "good.csv", []),
        ("fit-out-onto-text-file", [("notes.txt", "text", "my notes\n")], "notes.txt", []),
        ("fit-out-onto-yaml", [("good.yaml", "copy", "good.yaml")], "good.yaml", []),
        ("fit-out-onto-directory", [("outdir", "mkdir", None)], "outdir", []),
        ("fit-out-onto-table-named-skops", [("table.skops", "copy", "good.db")], "table.skops", ["--force"]),
    ]:
        add(Case(name, "1 fit --out", cli=["fit", "--table", "good.db", "--out", out, *extra], setup=[GOOD_DB, *setup]))
    cases[0].quick = cases[1].quick = True

    # ---- items 2, 3: table import of poisoned rows -> nothing imported (existing table unchanged, new one absent)
    for col, value, what in POISON_ROWS:
        bad = ("bad.csv", "poison_csv", (col, value))
        add(
            Case(
                f"import-{_slug(what)}-into-table",
                "2 table import",
                setup=[GOOD_DB, bad],
                cli=["table", "import", "--db", "good.db", "bad.csv"],
            )
        )
        add(
            Case(
                f"import-{_slug(what)}-into-new",
                "2 table import",
                setup=[bad],
                cli=["table", "import", "--db", "new.db", "bad.csv"],
                absent=["new.db"],
            )
        )
    for c in cases:
        if c.name in (
            "import-device-info-not-json-into-table",
            "import-nan-median-into-new",
            "import-n-1-5-into-table",
        ):
            c.quick = True
    for col, value, what in [
        ("median_ms", float("nan"), "nan-median"),
        ("device_info_json", "not json", "info"),
        ("median_ms", -1.0, "negative-median"),
        ("op_key", MB_ABC, "cin-abc"),
    ]:
        add(
            Case(
                f"import-parquet-{what}",
                "3 import atomic",
                setup=[GOOD_DB, ("bad.parquet", "poison_parquet", (col, value))],
                cli=["table", "import", "--db", "good.db", "bad.parquet"],
            )
        )
    add(
        Case(
            "import-good-then-poisoned-file",
            "3 import atomic",
            setup=[("bad.csv", "poison_csv", ("median_ms", "nan")), ("other.csv", "copy", "good.csv")],
            cli=["table", "import", "--db", "new.db", "other.csv", "bad.csv"],
            absent=["new.db"],
        )
    )
    add(
        Case(
            "import-poison-in-last-row",
            "3 import atomic",
            setup=[GOOD_DB, ("bad.csv", "poison_csv", ("median_ms", "nan", 30))],
            cli=["table", "import", "--db", "good.db", "bad.csv"],
        )
    )
    add(
        Case(
            "import-poison-in-first-row",
            "3 import atomic",
            setup=[GOOD_DB, ("bad.csv", "poison_csv", ("device_info_json", "x", 1))],
            cli=["table", "import", "--db", "good.db", "bad.csv"],
        )
    )
    # non-tables given to import
    for name, setup, files in [
        ("import-missing-file", [], ["nosuch.csv"]),
        ("import-empty-csv", [("e.csv", "text", "")], ["e.csv"]),
        ("import-header-only", [("h.csv", "text", "device_key,op_key\n")], ["h.csv"]),
        ("import-binary-as-csv", [("b.csv", "bytes", bytes(range(256)) * 8)], ["b.csv"]),
        ("import-table-as-csv", [("t.csv", "copy", "good.db")], ["t.csv"]),
        ("import-wrong-extension", [("x.txt", "copy", "good.csv")], ["x.txt"]),
        ("import-directory", [("d.csv", "mkdir", None)], ["d.csv"]),
        ("import-missing-median-column", [("m.csv", "drop_column", "median_ms")], ["m.csv"]),
        ("import-missing-device-key-column", [("m.csv", "drop_column", "device_key")], ["m.csv"]),
        ("import-garbage-parquet", [("g.parquet", "text", "not parquet")], ["g.parquet"]),
        ("import-csv-of-other-data", [("o.csv", "text", "a,b,c\n1,2,3\n")], ["o.csv"]),
        ("import-csv-over-size-cap", [("big.csv", "big_csv", 2)], ["big.csv"]),
    ]:
        add(
            Case(
                name,
                "2 table import",
                setup=[GOOD_DB, *setup],
                cli=["table", "import", "--db", "good.db", *files],
                env={"HWLAT_MAX_INPUT_MB": "1"} if "cap" in name else {},
            )
        )
    add(
        Case(
            "import-into-csv-as-db",
            "2 table import",
            setup=[GOOD_CSV, ("in.csv", "copy", "good.csv")],
            cli=["table", "import", "--db", "good.csv", "in.csv"],
        )
    )

    # ---- items 3, 4, 8, 9: lut import
    lut_bad = [
        ("lut-yaml-syntax-error", ("bad.yaml", "text", "a: [1, 2\nb: {c: 3\n")),
        ("lut-yaml-tab-indent", ("bad.yaml", "text", "Conv-input:2x2x3-output:1x1x32:\n\tmean: 1\n")),
        ("lut-yaml-bad-in-third-entry", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: [1, 2\n")),
        ("lut-python-apply-os-system", ("bad.yaml", "text", '!!python/object/apply:os.system ["touch PWNED"]\n')),
        (
            "lut-python-apply-in-entry",
            ("bad.yaml", "lut", f'{LUT_ENTRY}:\n  mean: !!python/object/apply:os.system ["touch PWNED"]\n'),
        ),
        ("lut-python-object-new", ("bad.yaml", "text", "!!python/object/new:os.system [touch PWNED]\n")),
        ("lut-python-name", ("bad.yaml", "text", "x: !!python/name:os.system\n")),
        ("lut-python-module", ("bad.yaml", "text", "x: !!python/module:os\n")),
        ("lut-python-subprocess", ("bad.yaml", "text", '!!python/object/apply:subprocess.call [["touch", "PWNED"]]\n')),
        ("lut-nan-mean-third", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: .nan\n")),
        ("lut-inf-mean-third", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: .inf\n")),
        ("lut-negative-mean-third", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: -1.0\n")),
        ("lut-text-mean-third", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: fast\n")),
        ("lut-no-mean-third", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  std: 0.1\n")),
        ("lut-negative-std-third", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: 1.0\n  std: -0.1\n")),
        ("lut-negative-var-third", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: 1.0\n  var: -0.1\n")),
        ("lut-count-fraction-third", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: 1.0\n  count: 1.5\n")),
        ("lut-count-negative-third", ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: 1.0\n  count: -4\n")),
        ("lut-bad-key-third", ("bad.yaml", "lut", "nonsense-key:\n  mean: 1.0\n")),
        ("lut-unknown-type-third", ("bad.yaml", "lut", "Pool-input:2x2x3-output:1x1x3:\n  mean: 1.0\n")),
        (
            "lut-stride-mismatch",
            (
                "bad.yaml",
                "lut",
                "expanded_conv-input:56x56x24-output:28x28x24-expand:3-kernel:5-stride:1-idskip:0:\n  mean: 1.0\n",
            ),
        ),
        ("lut-1e8-channels", ("bad.yaml", "lut", "Conv_1-input:7x7x100000000-output:7x7x1280:\n  mean: 1.0\n")),
        (
            "lut-huge-resolution",
            ("bad.yaml", "lut", "Conv-input:10000000x10000000x3-output:5000000x5000000x32:\n  mean: 1.0\n"),
        ),
        ("lut-zero-channels", ("bad.yaml", "lut", "Conv_1-input:7x7x0-output:7x7x1280:\n  mean: 1.0\n")),
        ("lut-entry-not-mapping", ("bad.yaml", "lut", f"{LUT_ENTRY}: 1.0\n")),
        ("lut-key-not-text", ("bad.yaml", "lut", "12: {mean: 1.0}\n")),
        ("lut-top-level-list", ("bad.yaml", "text", "- 1\n- 2\n")),
        ("lut-empty-file", ("bad.yaml", "text", "")),
        ("lut-binary-file", ("bad.yaml", "bytes", b"\xff\xfe\x00garbage" * 50)),
        ("lut-a-table", ("bad.yaml", "copy", "good.db")),
        (
            "lut-billion-laughs",
            (
                "bad.yaml",
                "text",
                'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
                "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
            ),
        ),
        ("lut-over-size-cap", ("bad.yaml", "huge_lut", 21)),
    ]
    for name, file in lut_bad:
        add(
            Case(
                f"{name}-into-table",
                "3 lut import",
                setup=[GOOD_DB, file],
                cli=["lut", "import", "--db", "good.db", "--device", "phone1", "bad.yaml"],
            )
        )
        if name in (
            "lut-yaml-syntax-error",
            "lut-python-apply-os-system",
            "lut-nan-mean-third",
            "lut-bad-key-third",
            "lut-1e8-channels",
            "lut-python-apply-in-entry",
        ):
            add(
                Case(
                    f"{name}-into-new",
                    "3 lut import",
                    setup=[file],
                    absent=["new.db"],
                    cli=["lut", "import", "--db", "new.db", "--device", "phone1", "bad.yaml"],
                )
            )
    for c in cases:
        if c.name in (
            "lut-python-apply-os-system-into-table",
            "lut-nan-mean-third-into-new",
            "lut-over-size-cap-into-table",
        ):
            c.quick = True
    add(
        Case(
            "lut-missing-file",
            "3 lut import",
            setup=[GOOD_DB],
            cli=["lut", "import", "--db", "good.db", "--device", "phone1", "nosuch.yaml"],
        )
    )
    for dev in ["a/b=c", "", "x y", "../x", "phone/t1", "a:b"]:
        add(
            Case(
                f"lut-device-{_slug(dev) or 'empty'}",
                "9 lut --device",
                setup=[GOOD_DB, ("good.yaml", "copy", "good.yaml")],
                cli=["lut", "import", "--db", "good.db", "--device", dev, "good.yaml"],
                quick=dev == "a/b=c",
            )
        )
    add(
        Case(
            "lut-import-into-csv-as-db",
            "3 lut import",
            setup=[GOOD_CSV, ("good.yaml", "copy", "good.yaml")],
            cli=["lut", "import", "--db", "good.csv", "--device", "phone1", "good.yaml"],
        )
    )

    # ---- item 4/5: corrupt or foreign table files, for every command that reads a table
    bad_dbs = [
        ("flipped-header", ("bad.db", "flip", 100)),
        ("flipped-page2", ("bad.db", "flip", 4096 + 8)),
        ("flipped-many", ("bad.db", "flip", [8192 + 8, 12288 + 8, 16384 + 8, 20480 + 8])),
        ("truncated-half", ("bad.db", "truncate", ("good.db", 20000))),
        ("truncated-header", ("bad.db", "truncate", ("good.db", 50))),
        ("other-app-sqlite", ("bad.db", "sqlite", "foreign")),
        ("other-app-id", ("bad.db", "sqlite", "foreign-id")),
        ("our-app-id-other-schema", ("bad.db", "sqlite", "appid")),
        ("empty-file", ("bad.db", "text", "")),
        ("text-file", ("bad.db", "text", "hello\n")),
        ("a-predictor", ("bad.db", "copy", "good.skops")),
    ]
    for what, file in bad_dbs:
        for cmd, args in [
            ("show", ["table", "show", "--db", "bad.db"]),
            ("fit", ["fit", "--table", "bad.db", "--out", "p.skops"]),
            ("measure", ["measure", "--device", "fake", "--space", "mbconv", "--n", "3", "--db", "bad.db", "-q"]),
        ]:
            if (what, cmd) == ("empty-file", "measure"):
                continue  # a 0-byte file is an empty SQLite database: measuring into it is fine
            add(
                Case(
                    f"db-{what}-{cmd}",
                    "4 corrupt table",
                    setup=[file],
                    cli=args,
                    quick=(what, cmd) in {("flipped-page2", "show"), ("our-app-id-other-schema", "measure")},
                )
            )
        if what in ("flipped-page2", "our-app-id-other-schema", "other-app-sqlite"):
            add(
                Case(
                    f"db-{what}-export",
                    "4 corrupt table",
                    setup=[file],
                    absent=["out.csv"],
                    cli=["table", "export", "--db", "bad.db", "--out", "out.csv"],
                )
            )
            add(
                Case(
                    f"db-{what}-import",
                    "4 corrupt table",
                    setup=[file, GOOD_CSV],
                    cli=["table", "import", "--db", "bad.db", "good.csv"],
                )
            )
            add(
                Case(
                    f"db-{what}-lut-import",
                    "4 corrupt table",
                    setup=[file, ("good.yaml", "copy", "good.yaml")],
                    cli=["lut", "import", "--db", "bad.db", "--device", "phone1", "good.yaml"],
                )
            )
            add(
                Case(
                    f"db-{what}-evaluate",
                    "4 corrupt table",
                    setup=[file, GOOD_SKOPS],
                    cli=["evaluate", "--predictor", "good.skops", "--table", "bad.db"],
                )
            )
    add(
        Case(
            "db-locked-by-another-process",
            "4 locked table",
            setup=[GOOD_DB],
            lock="good.db",
            env={"HWLAT_BUSY_TIMEOUT_S": "1"},
            cli=[
                "measure",
                "--device",
                "fake",
                "--space",
                "mbconv",
                "--n",
                "40",
                "--seed",
                "7",
                "--db",
                "good.db",
                "-q",
            ],
        )
    )
    add(
        Case(
            "db-locked-import",
            "4 locked table",
            setup=[GOOD_DB, ("in.csv", "poison_csv", ("op_key", MB))],
            lock="good.db",
            env={"HWLAT_BUSY_TIMEOUT_S": "1"},
            cli=["table", "import", "--db", "good.db", "in.csv"],
        )
    )
    add(
        Case(
            "db-busy-timeout-abc",
            "4 locked table",
            setup=[GOOD_DB],
            env={"HWLAT_BUSY_TIMEOUT_S": "abc"},
            cli=["measure", "--device", "fake", "--space", "mbconv", "--n", "3", "--db", "good.db", "-q"],
        )
    )
    add(
        Case(
            "db-is-directory",
            "4 corrupt table",
            setup=[("d.db", "mkdir", None)],
            cli=["measure", "--device", "fake", "--space", "mbconv", "--n", "3", "--db", "d.db", "-q"],
        )
    )
    add(
        Case(
            "db-in-missing-folder",
            "4 corrupt table",
            cli=["table", "show", "--db", "no/such/dir/x.db"],
            absent=["no"],
        )
    )
    add(Case("db-show-missing", "4 corrupt table", cli=["table", "show", "--db", "nosuch.db"], absent=["nosuch.db"]))
    add(
        Case(
            "db-measure-onto-csv",
            "4 corrupt table",
            setup=[GOOD_CSV],
            cli=["measure", "--device", "fake", "--space", "mbconv", "--n", "3", "--db", "good.csv", "-q"],
        )
    )

    # ---- item 7: device strings and options
    devices = [
        "fake/tpyo=1",
        "fake/cores=abc",
        "fake/cores=99",
        "fake/peak_gmacs=0",
        "fake/peak_gmacs=-1",
        "fake/peak_gmacs=nan",
        "fake/peak_gmacs=inf",
        "fake/noise=abc",
        "fake/noise=-1",
        "fake/bandwidth_gbs=nan",
        "fake/bandwidth_gbs=0",
        "fake/overhead_us=-1",
        "fake/overhead_us=inf",
        "fake/drift=abc",
        "fake/drift=0:1",
        "fake/drift=1:-2",
        "fake/realtime=maybe",
        "fake/gpu=-1",
        "fake/drift_phase=abc",
        "fake/noise=",
        "fake/=1",
        "fake/t0",
        "fake/b0",
        "fake/tabc",
        "fake/t-1",
        "fake/fp99",
        "nosuchbackend",
        "",
        "/",
        "fake//",
        "FAKE",
        "adb",
        "adb-tflite",
        "onnxruntime-cpu/cores=abc",
        "onnxruntime-cpu/cores=9999",
        "onnxruntime-cpu/tpyo=1",
        "torch-cpu/tpyo=1",
    ]
    for dev in devices:
        add(
            Case(
                f"device-{_slug(dev) or 'empty'}",
                "7 device options",
                setup=[],
                absent=["x.db"],
                cli=["measure", "--device", dev, "--space", "mbconv", "--n", "3", "--db", "x.db", "-q"],
                quick=dev in ("fake/peak_gmacs=0", "fake/cores=abc", "adb"),
            )
        )
    for flag, values in [
        ("--budget", ["0", "-1", "inf", "nan", "abc"]),
        ("--jobs", ["-1", "0", "abc"]),
        ("--n", ["0", "-5", "abc", "1.5"]),
        ("--rel-ci", ["0", "-0.1", "nan", "abc"]),
        ("--threads", ["0", "-1", "abc"]),
        ("--batch", ["0", "-1"]),
        ("--seed", ["abc"]),
        ("--space", ["nosuch", ""]),
    ]:
        for v in values:
            add(
                Case(
                    f"measure{flag}-{_slug(v) or 'empty'}",
                    "7 measure options",
                    setup=[GOOD_DB],
                    cli=[
                        "measure",
                        "--device",
                        "fake",
                        "--space",
                        "mbconv",
                        "--n",
                        "3",
                        "--db",
                        "good.db",
                        "-q",
                        flag,
                        v,
                    ],
                    quick=(flag, v) in {("--budget", "inf"), ("--jobs", "-1")},
                )
            )
    for v in [
        "nosuch",
        "random:0",
        "random:-1",
        "random:abc",
        "nosuch.json",
        "bad.json",
        "list.json",
        ",",
        "random:1:abc",
    ]:
        add(
            Case(
                f"measure-networks-{_slug(v) or 'comma'}",
                "7 measure options",
                setup=[
                    GOOD_DB,
                    ("bad.json", "text", "{ not json"),
                    ("list.json", "text", '{"name": "x", "ops": [1, 2]}'),
                ],
                cli=["measure", "--device", "fake", "--networks", v, "--db", "good.db", "-q"],
            )
        )
    add(
        Case(
            "measure-space-and-networks",
            "7 measure options",
            setup=[GOOD_DB],
            cli=[
                "measure",
                "--device",
                "fake",
                "--space",
                "mbconv",
                "--networks",
                "mobilenet-v2",
                "--db",
                "good.db",
                "-q",
            ],
        )
    )

    # ---- item 8: op keys for --reference, shape bounds
    for what, key in [
        ("10^6 channels", MB_HUGE),
        ("cin=abc", MB_ABC),
        ("unknown kind", "nosuch:cin=3,cout=3"),
        ("no fields", "mbconv"),
        ("negative channels", MB.replace("cin=32", "cin=-32")),
        ("kernel 10^4", MB.replace("kernel=3", "kernel=10001")),
        ("h=0", MB.replace("h=56", "h=0")),
        ("unknown field", MB + ",tpyo=1"),
        ("stride 0", MB.replace("stride=2", "stride=0")),
    ]:
        add(
            Case(
                f"reference-{_slug(what)}",
                "8 op keys",
                setup=[GOOD_DB],
                cli=[
                    "measure",
                    "--device",
                    "fake",
                    "--space",
                    "mbconv",
                    "--n",
                    "3",
                    "--db",
                    "good.db",
                    "-q",
                    "--reference",
                    key,
                ],
                quick=what == "10^6 channels",
            )
        )
    add(
        Case(
            "max-channels-env-abc",
            "8 op keys",
            setup=[GOOD_DB],
            env={"HWLAT_MAX_CHANNELS": "abc"},
            cli=["measure", "--device", "fake", "--space", "mbconv", "--n", "3", "--db", "good.db", "-q"],
        )
    )

    # ---- fit
    for name, setup, args in [
        ("fit-missing-table", [], ["--table", "nosuch.db"]),
        ("fit-empty-file", [("e.db", "text", "")], ["--table", "e.db"]),
        ("fit-csv-as-table", [GOOD_CSV], ["--table", "good.csv"]),
        ("fit-text-as-table", [("t.db", "text", "hello")], ["--table", "t.db"]),
        ("fit-target-nosuch", [GOOD_DB], ["--table", "good.db", "--target", "nosuch"]),
        ("fit-target-empty", [GOOD_DB], ["--table", "good.db", "--target", ""]),
        ("fit-target-op-key", [GOOD_DB], ["--table", "good.db", "--target", "op_key"]),
        ("fit-device-nosuch", [GOOD_DB], ["--table", "good.db", "--device", "nosuch"]),
        ("fit-model-nosuch", [GOOD_DB], ["--table", "good.db", "--model", "nosuch"]),
        ("fit-empty-table", [("e.db", "empty_store", None)], ["--table", "e.db"]),
    ]:
        add(
            Case(
                name,
                "4 fit",
                setup=setup,
                cli=["fit", *args, "--out", "p.skops"],
                absent=["p.skops"],
                quick=name == "fit-target-nosuch",
            )
        )

    # ---- item 9 + predictor files: predict / evaluate / load
    pred_files = [
        ("meta-scale", ("p.skops", "meta_edit", ("scale", 2.0))),
        ("meta-overhead", ("p.skops", "meta_edit", ("overhead_ms", 5.0))),
        ("meta-device", ("p.skops", "meta_edit", ("device_key", "other/t1/b1/fp32"))),
        ("meta-target", ("p.skops", "meta_edit", ("target", "p95_ms"))),
        ("meta-features", ("p.skops", "meta_edit", ("features", ["cin"]))),
        ("meta-format", ("p.skops", "meta_edit", ("format", "hwlat.predictor/99"))),
        ("meta-file-sha", ("p.skops", "meta_edit", ("file_sha256", "0" * 64))),
        ("meta-no-sha", ("p.skops", "meta_edit", ("file_sha256", None))),
        ("meta-garbage", ("p.skops", "meta_edit", "garbage")),
        ("meta-missing", ("p.skops", "meta_edit", "missing")),
        ("pickle-bomb", ("p.skops", "pickle_bomb", "with-meta")),
        ("pickle-bomb-no-meta", ("p.skops", "pickle_bomb", "")),
        ("pickle-bomb-resigned", ("p.skops", "pickle_bomb", "resigned")),
        ("skops-untrusted-function-resigned", ("p.skops", "skops_untrusted", "function-resigned")),
        ("skops-untrusted-reduce-resigned", ("p.skops", "skops_untrusted", "reduce-resigned")),
        ("skops-untrusted-function", ("p.skops", "skops_untrusted", "function")),
        ("skops-untrusted-reduce", ("p.skops", "skops_untrusted", "reduce")),
        ("zip-not-skops", ("p.skops", "zip", "{}")),
        ("truncated-skops", ("p.skops", "truncate", ("good.skops", 5000))),
        ("empty-file", ("p.skops", "text", "")),
        ("a-table", ("p.skops", "copy", "good.db")),
    ]
    for what, file in pred_files:
        add(
            Case(
                f"predictor-{what}-predict",
                "9 predictor files",
                setup=[file],
                cli=["predict", "--predictor", "p.skops", "--network", "random:1"],
                quick=what in ("meta-scale", "pickle-bomb"),
            )
        )
        if what in ("meta-scale", "pickle-bomb", "skops-untrusted-function", "a-table"):
            add(
                Case(
                    f"predictor-{what}-evaluate",
                    "9 predictor files",
                    setup=[file, GOOD_DB],
                    cli=["evaluate", "--predictor", "p.skops", "--table", "good.db"],
                )
            )
            add(
                Case(
                    f"predictor-{what}-lut-export",
                    "9 predictor files",
                    setup=[file],
                    absent=["o.yaml"],
                    cli=["lut", "export", "--predictor", "p.skops", "--out", "o.yaml"],
                )
            )
    for name, setup, args in [
        ("predict-missing-predictor", [], ["--predictor", "nosuch.skops", "--network", "random:1"]),
        ("predict-network-nosuch", [GOOD_SKOPS], ["--predictor", "good.skops", "--network", "nosuch"]),
        (
            "predict-network-bad-json",
            [GOOD_SKOPS, ("n.json", "text", "{")],
            ["--predictor", "good.skops", "--network", "n.json"],
        ),
        ("predict-network-random-0", [GOOD_SKOPS], ["--predictor", "good.skops", "--network", "random:0"]),
        ("predict-network-other-kinds", [GOOD_SKOPS], ["--predictor", "good.skops", "--network", "resnet18"]),
    ]:
        add(Case(name, "9 predictor files", setup=setup, cli=["predict", *args]))
    for name, setup, args in [
        ("evaluate-missing-table", [GOOD_SKOPS], ["--predictor", "good.skops", "--table", "nosuch.db"]),
        ("evaluate-csv-table", [GOOD_SKOPS, GOOD_CSV], ["--predictor", "good.skops", "--table", "good.csv"]),
        (
            "evaluate-repeat-missing",
            [GOOD_SKOPS, GOOD_DB],
            ["--predictor", "good.skops", "--table", "good.db", "--repeat", "nosuch.db"],
        ),
        (
            "evaluate-out-onto-table",
            [GOOD_SKOPS, GOOD_DB, ("o.db", "copy", "good.db")],
            ["--predictor", "good.skops", "--table", "good.db", "--out", "o.db"],
        ),
    ]:
        add(Case(name, "9 predictor files", setup=setup, cli=["evaluate", *args]))

    # ---- table show / export, lut export: outputs onto data files
    for name, setup, args, absent in [
        (
            "export-onto-table",
            [GOOD_DB, ("o.db", "copy", "good.db")],
            ["table", "export", "--db", "good.db", "--out", "o.db"],
            [],
        ),
        ("export-onto-own-table", [GOOD_DB], ["table", "export", "--db", "good.db", "--out", "good.db"], []),
        ("export-bad-extension", [GOOD_DB], ["table", "export", "--db", "good.db", "--out", "o.txt"], ["o.txt"]),
        (
            "export-device-nosuch",
            [GOOD_DB],
            ["table", "export", "--db", "good.db", "--device", "nosuch", "--out", "o.csv"],
            ["o.csv"],
        ),
        (
            "export-onto-directory",
            [GOOD_DB, ("o.csv", "mkdir", None)],
            ["table", "export", "--db", "good.db", "--out", "o.csv"],
            [],
        ),
        ("export-missing-db", [], ["table", "export", "--db", "nosuch.db", "--out", "o.csv"], ["o.csv", "nosuch.db"]),
        ("show-rows-negative", [GOOD_DB], ["table", "show", "--db", "good.db", "--rows", "-1"], []),
        ("show-rows-abc", [GOOD_DB], ["table", "show", "--db", "good.db", "--rows", "abc"], []),
        ("show-device-nosuch", [GOOD_DB], ["table", "show", "--db", "good.db", "--device", "nosuch"], []),
        (
            "lut-export-onto-table",
            [GOOD_SKOPS, ("o.db", "copy", "good.db")],
            ["lut", "export", "--predictor", "good.skops", "--out", "o.db"],
            [],
        ),
        (
            "lut-export-onto-table-force",
            [GOOD_SKOPS, ("o.db", "copy", "good.db")],
            ["lut", "export", "--predictor", "good.skops", "--out", "o.db", "--force"],
            [],
        ),
        (
            "lut-export-onto-csv",
            [GOOD_SKOPS, GOOD_CSV],
            ["lut", "export", "--predictor", "good.skops", "--out", "good.csv"],
            [],
        ),
        (
            "lut-export-space-nosuch",
            [GOOD_SKOPS],
            ["lut", "export", "--predictor", "good.skops", "--space", "nosuch", "--out", "o.yaml"],
            ["o.yaml"],
        ),
        (
            "lut-export-kinds-not-fitted",
            [GOOD_SKOPS],
            ["lut", "export", "--predictor", "good.skops", "--space", "conv", "--out", "o.yaml"],
            ["o.yaml"],
        ),
    ]:
        add(Case(name, "1 outputs onto data", setup=setup, cli=args, absent=absent, quick=name == "export-onto-table"))

    # ---- compare
    for name, setup, args in [
        ("compare-model-nosuch", [], ["--models", "nosuch", "--devices", "fake"]),
        ("compare-models-empty", [], ["--models", "", "--devices", "fake"]),
        ("compare-device-nosuch", [], ["--models", "mobilenet-v2", "--devices", "nosuch"]),
        ("compare-device-bad-option", [], ["--models", "mobilenet-v2", "--devices", "fake/tpyo=1"]),
        ("compare-devices-empty", [], ["--models", "mobilenet-v2", "--devices", ""]),
        (
            "compare-predictors-no-equals",
            [GOOD_SKOPS],
            ["--models", "mobilenet-v2", "--devices", "fake", "--predictors", "good.skops"],
        ),
        (
            "compare-predictors-missing",
            [],
            ["--models", "mobilenet-v2", "--devices", "fake", "--predictors", "fake=nosuch.skops"],
        ),
        (
            "compare-predictors-unknown-device",
            [GOOD_SKOPS],
            ["--models", "mobilenet-v2", "--devices", "fake", "--predictors", "cuda=good.skops"],
        ),
        ("compare-budget-negative", [], ["--models", "mobilenet-v2", "--devices", "fake", "--budget", "-1"]),
        ("compare-db-onto-csv", [GOOD_CSV], ["--models", "mobilenet-v2", "--devices", "fake", "--db", "good.csv"]),
        ("compare-out-onto-table", [GOOD_DB], ["--models", "mobilenet-v2", "--devices", "fake", "--out", "good.db"]),
    ]:
        add(Case(name, "7 compare", setup=setup, cli=["compare", *args, "-q"], quick=name == "compare-model-nosuch"))

    # ---- item 7: search targets (refuse, or warn with the space's range)
    search = [
        "search",
        "proxyless",
        "--predictor",
        "digits.skops",
        "--no-measure",
        "-q",
        "--epochs",
        "1",
        "--warmup-epochs",
        "0",
        "--final-epochs",
        "0",
        "--loss",
        "mul#log",
        "--out",
        "s",
    ]
    for v in ["nan", "inf", "1e-9", "1e6", "-1", "0", "abc"]:
        add(
            Case(
                f"search-target-{_slug(v)}",
                "7 search targets",
                setup=[DIGITS_SKOPS],
                cli=[*search, "--target-ms", v],
                expect="error" if v in ("nan", "inf", "-1", "0", "abc") else "error_or_warning",
                quick=v == "nan",
            )
        )
    add(
        Case(
            "search-predictor-wrong-space",
            "7 search targets",
            setup=[GOOD_SKOPS],
            cli=[*search[:3], "good.skops", *search[4:], "--target-ms", "0.2"],
        )
    )
    add(
        Case(
            "search-predictor-missing",
            "7 search targets",
            cli=[*search[:3], "nosuch.skops", *search[4:], "--target-ms", "0.2"],
        )
    )
    add(
        Case(
            "search-lam-nan",
            "7 search targets",
            setup=[DIGITS_SKOPS],
            cli=[*search, "--target-ms", "0.2", "--lam", "nan"],
        )
    )
    add(
        Case(
            "search-epochs-negative",
            "7 search targets",
            setup=[DIGITS_SKOPS],
            cli=[*search, "--target-ms", "0.2", "--epochs", "-1"],
        )
    )
    add(
        Case(
            "search-darc-latency-no-predictor",
            "7 search targets",
            cli=["search", "darc", "--no-measure", "-q", "--mode", "latency", "--budget-ms", "0.1", "--out", "s"],
        )
    )
    add(
        Case(
            "search-width-budget-nan",
            "7 search targets",
            setup=[DIGITS_SKOPS],
            cli=[
                "search",
                "width",
                "--predictor",
                "digits.skops",
                "--no-measure",
                "-q",
                "--budget-ms",
                "nan",
                "--out",
                "s",
            ],
        )
    )
    add(
        Case(
            "search-out-onto-table",
            "7 search targets",
            setup=[DIGITS_SKOPS, GOOD_DB],
            cli=[*search[:-1], "good.db", "--target-ms", "0.2"],
        )
    )

    # ---- quickstart, cache
    for name, setup, args in [
        ("quickstart-n-0", [], ["--n", "0", "--device", "fake"]),
        ("quickstart-n-abc", [], ["--n", "abc"]),
        ("quickstart-device-nosuch", [], ["--device", "nosuch"]),
        ("quickstart-out-onto-table", [GOOD_DB], ["--out", "good.db", "--device", "fake", "--n", "10"]),
    ]:
        add(Case(name, "7 quickstart", setup=setup, cli=["quickstart", *args]))
    add(
        Case(
            "cache-truncated-onnx-rebuilt",
            "6 cache",
            setup=[("c.db", "warm_cache", None)],
            expect="ok",
            cli=[
                "measure",
                "--device",
                "onnxruntime-cpu",
                "--space",
                "pwconv",
                "--n",
                "1",
                "--seed",
                "0",
                "--db",
                "x.db",
                "-q",
                "--budget",
                "0.05",
            ],
        )
    )
    add(
        Case(
            "cache-is-a-file",
            "6 cache",
            setup=[("cachefile", "text", "x")],
            env={"HWLAT_CACHE": "cachefile"},
            cli=["measure", "--device", "onnxruntime-cpu", "--space", "pwconv", "--n", "1", "--db", "x.db", "-q"],
        )
    )
    add(Case("cache-max-gb-abc", "6 cache", env={"HWLAT_CACHE_MAX_GB": "abc"}, cli=["cache", "info"]))
    add(
        Case(
            "input-cap-env-abc",
            "8 size caps",
            setup=[GOOD_DB, ("good.yaml", "copy", "good.yaml")],
            env={"HWLAT_MAX_INPUT_MB": "abc"},
            cli=["lut", "import", "--db", "good.db", "--device", "p", "good.yaml"],
        )
    )

    # ---- the Python API
    api = [
        (
            "api-devicespec-typo",
            "7 device options",
            [],
            "from hwlat.devices import create_backend\ncreate_backend('fake/tpyo=1')",
        ),
        (
            "api-fake-peak-zero",
            "7 device options",
            [],
            "from hwlat.devices import create_backend\ncreate_backend('fake/peak_gmacs=0')",
        ),
        (
            "api-fake-noise-abc",
            "7 device options",
            [],
            "from hwlat.devices import create_backend\ncreate_backend('fake/noise=abc')",
        ),
        (
            "api-backend-nosuch",
            "7 device options",
            [],
            "from hwlat.devices import create_backend\ncreate_backend('nosuch')",
        ),
        (
            "api-backend-kwarg-typo",
            "7 device options",
            [],
            "from hwlat.devices import create_backend\ncreate_backend('fake', tpyo=1)",
        ),
        (
            "api-opspec-negative",
            "8 op keys",
            [],
            "from hwlat import OpSpec\nOpSpec('conv', cin=-1, cout=3, h=8, w=8, kernel=3)",
        ),
        (
            "api-opspec-huge",
            "8 op keys",
            [],
            "from hwlat import OpSpec\nOpSpec('conv', cin=10**6, cout=10**6, h=224, w=224, kernel=3)",
        ),
        ("api-opspec-from-key-abc", "8 op keys", [], f"from hwlat import OpSpec\nOpSpec.from_key({MB_ABC!r})"),
        ("api-opspec-kind-nosuch", "8 op keys", [], "from hwlat import OpSpec\nOpSpec('nosuch', cin=3)"),
        (
            "api-opspec-str-channels",
            "8 op keys",
            [],
            "from hwlat import OpSpec\nOpSpec('conv', cin='3', cout=3, h=8, w=8)",
        ),
        (
            "api-predict-huge-op",
            "8 op keys",
            [GOOD_SKOPS],
            f"from hwlat import OpSpec\nfrom hwlat.predict import load_predictor\n"
            f"p = load_predictor('good.skops')\np.predict([OpSpec.from_key({MB_HUGE!r})])",
        ),
        (
            "api-predict-unknown-kind",
            "9 predictor files",
            [GOOD_SKOPS],
            "from hwlat import OpSpec\nfrom hwlat.predict import load_predictor\n"
            "p = load_predictor('good.skops')\np.predict([OpSpec('linear', cin=8, cout=8)])",
        ),
        (
            "api-load-meta-edited",
            "9 predictor files",
            [("p.skops", "meta_edit", ("scale", 3.0))],
            "from hwlat.predict import load_predictor\nload_predictor('p.skops')",
        ),
        (
            "api-load-pickle-bomb",
            "9 predictor files",
            [("p.skops", "pickle_bomb", "with-meta")],
            "from hwlat.predict import load_predictor\nload_predictor('p.skops')",
        ),
        (
            "api-load-untrusted",
            "9 predictor files",
            [("p.skops", "skops_untrusted", "function")],
            "from hwlat.predict import load_predictor\nload_predictor('p.skops')",
        ),
        (
            "api-load-untrusted-resigned",
            "9 predictor files",
            [("p.skops", "skops_untrusted", "function-resigned")],
            "from hwlat.predict import load_predictor\nload_predictor('p.skops')",
        ),
        (
            "api-store-flipped",
            "4 corrupt table",
            [("bad.db", "flip", 4096 + 8)],
            "from hwlat.store import LatencyStore\ns = LatencyStore('bad.db')\nlist(s.measurements())",
        ),
        (
            "api-store-appid-other-schema",
            "4 corrupt table",
            [("bad.db", "sqlite", "appid")],
            "from hwlat.store import LatencyStore\ns = LatencyStore('bad.db')\nlen(s)",
        ),
        (
            "api-store-csv",
            "4 corrupt table",
            [GOOD_CSV],
            "from hwlat.store import LatencyStore\nLatencyStore('good.csv')",
        ),
        (
            "api-import-poison",
            "2 table import",
            [GOOD_DB, ("bad.csv", "poison_csv", ("device_info_json", "x"))],
            "from hwlat.store import LatencyStore\nLatencyStore('good.db').import_file('bad.csv')",
        ),
        (
            "api-import-nan",
            "3 import atomic",
            [GOOD_DB, ("bad.csv", "poison_csv", ("median_ms", "nan"))],
            "from hwlat.store import LatencyStore\nLatencyStore('good.db').import_file('bad.csv')",
        ),
        (
            "api-lut-python-tag",
            "3 lut import",
            [("bad.yaml", "text", '!!python/object/apply:os.system ["touch PWNED"]\n')],
            "from hwlat.formats.lut import read_lut\nread_lut('bad.yaml')",
        ),
        (
            "api-lut-nan-third",
            "3 lut import",
            [GOOD_DB, ("bad.yaml", "lut", f"{LUT_ENTRY}:\n  mean: .nan\n")],
            "from hwlat.store import LatencyStore\nfrom hwlat.formats.lut import import_lut\n"
            "import_lut('bad.yaml', LatencyStore('good.db'), 'phone1')",
        ),
        (
            "api-lut-device-slash",
            "9 lut --device",
            [GOOD_DB, ("good.yaml", "copy", "good.yaml")],
            "from hwlat.store import LatencyStore\nfrom hwlat.formats.lut import import_lut\n"
            "import_lut('good.yaml', LatencyStore('good.db'), 'a/b=c')",
        ),
        (
            "api-protocol-budget-negative",
            "7 measure options",
            [],
            "from hwlat.workflows import protocol_from_options\nprotocol_from_options('adaptive', budget_s=-1)",
        ),
        (
            "api-protocol-rel-ci-nan",
            "7 measure options",
            [],
            "from hwlat.workflows import protocol_from_options\nprotocol_from_options('adaptive', rel_ci=float('nan'))",
        ),
        (
            "api-protocol-nosuch",
            "7 measure options",
            [],
            "from hwlat.workflows import protocol_from_options\nprotocol_from_options('nosuch')",
        ),
        (
            "api-resolve-networks-nosuch",
            "7 measure options",
            [],
            "from hwlat.workflows import resolve_networks\nresolve_networks('nosuch')",
        ),
        (
            "api-fit-target-nosuch",
            "4 fit",
            [GOOD_DB],
            "from hwlat.workflows import fit_table\nfit_table('good.db', 'p.skops', target='nosuch')",
        ),
        (
            "api-fit-out-onto-table",
            "1 fit --out",
            [GOOD_DB, ("o.db", "copy", "good.db")],
            "from hwlat.workflows import fit_table\nfit_table('good.db', 'o.db', force=True)",
        ),
        ("api-check-jobs-negative", "7 measure options", [], "from hwlat.workflows import check_jobs\ncheck_jobs(-1)"),
    ]
    for name, group, setup, code in api:
        add(
            Case(
                name,
                group,
                api=code,
                setup=setup,
                quick=name in ("api-fake-peak-zero", "api-load-pickle-bomb", "api-lut-nan-third"),
            )
        )
    seen: Counter = Counter()
    for c in cases:  # e.g. devices "" and "/" slug alike: number the later ones
        seen[c.name] += 1
        if seen[c.name] > 1:
            c.name = f"{c.name}-{seen[c.name]}"
    return cases


CASES = build_cases()

# ---------------------------------------------------------------- running one case

API_WRAPPER = r"""
import os, re, sys, traceback
code, root = sys.argv[1], sys.argv[2]
def clean(exc):
    if isinstance(exc, (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                        PermissionError)):
        return True
    if type(exc) is TypeError and not re.search(r"\w\(\) (got|takes|missing)", str(exc)):
        tb = traceback.extract_tb(exc.__traceback__)
        here = os.path.abspath(tb[-1].filename) if tb else ""
        if here.startswith(root) and os.sep + ".venv" + os.sep not in here:
            return True
    return any(getattr(k, "__module__", "").split(".")[0] == "hwlat" for k in type(exc).__mro__[:-1])
try:
    exec(compile(code, "<case>", "exec"), {"__name__": "__case__"})
except Exception as exc:
    if not clean(exc):
        raise
    print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(2)
"""

LOCKER = r"""
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""

_PROGRESS = re.compile(r"^\s*\S*:?\s*\d+%\|")
_WARNING = re.compile(r"^warning\b", re.IGNORECASE)  # "warning: ..." and logging's "WARNING name: ..."
_NP_REPR = re.compile(r"\bnp\.(str_|float64|int64|bool_)\(")


def message_lines(stderr: str) -> list[str]:
    """stderr's message lines: not empty, not a warning, not a progress bar (see the module docstring)."""
    out = []
    in_usage = False
    for line in stderr.split("\n"):
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and line[:1].isspace():
            continue
        in_usage = False
        if "\r" in line or _PROGRESS.match(line):
            continue
        s = line.strip()
        if not s or _WARNING.match(s) or "Warning:" in s:
            continue
        out.append(s)
    return out


def _snapshot(folder: Path) -> dict[str, str]:
    snap = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if rel.split("/")[0] in ("cache", "home") or not p.is_file():
            continue
        if rel.endswith(("-wal", "-shm", "-journal")):
            continue
        snap[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def run_case(case: Case, fixtures: Path, workdir: Path) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=_slug(case.name)[:40] + "-", dir=workdir))
    env = base_env(folder)
    for k, v in case.env.items():
        env[k] = str(folder / v) if k == "HWLAT_CACHE" else v
    for name, maker, arg in case.setup:
        MAKERS[maker](fixtures, folder / name, arg)
    before = _snapshot(folder)
    locker = None
    if case.lock:
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(folder / case.lock), "60"], stdout=subprocess.PIPE, text=True
        )
        locker.stdout.readline()
    argv = (
        [sys.executable, "-m", "hwlat.cli", *case.cli]
        if case.cli is not None
        else [sys.executable, "-c", API_WRAPPER, case.api, str(ROOT) + os.sep]
    )
    t0 = time.perf_counter()
    try:
        r = subprocess.run(
            argv, cwd=folder, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL
        )
        rc, stdout, stderr, timed_out = r.returncode, r.stdout, r.stderr, False
    except subprocess.TimeoutExpired as exc:
        rc, timed_out = -9, True
        stdout = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    wall = time.perf_counter() - t0
    if locker is not None:
        locker.kill()
        locker.wait()
    after = _snapshot(folder)
    changed = sorted(k for k, h in before.items() if after.get(k) != h)
    left = sorted(a for a in case.absent if (folder / a).exists())
    executed = any(p.name == "PWNED" for p in folder.rglob("PWNED"))
    traceback = "Traceback (most recent call last)" in stderr
    lines = message_lines(stderr)
    warned = any(_WARNING.match(s.strip()) for s in stderr.splitlines())
    one_line = rc != 0 and not traceback and len(lines) == 1 and not _NP_REPR.search(lines[0])
    clean = not changed and not left and not executed
    if case.expect == "ok":
        ok = rc == 0 and clean
    elif case.expect == "error_or_warning":
        ok = clean and ((rc != 0 and one_line) or (rc == 0 and warned))
    else:
        ok = rc != 0 and one_line and clean
    first = (lines[0] if lines else (stderr.strip().splitlines() or [""])[-1]) if stderr.strip() else ""
    if traceback:
        first = stderr.strip().splitlines()[-1]
    if rc == 0 and not first:
        first = "(exit 0: accepted) " + (stdout.strip().splitlines() or [""])[-1]
    if timed_out:
        first = f"(timed out after {TIMEOUT_S} s) " + first
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "name": case.name,
        "group": case.group,
        "via": "cli" if case.cli is not None else "api",
        "command": ("hwlat " + " ".join(case.cli)) if case.cli is not None else case.api,
        "expect": case.expect,
        "rc": rc,
        "traceback": traceback,
        "one_line": one_line,
        "stderr_lines": len(lines),
        "changed": changed,
        "left_behind": left,
        "executed": executed,
        "ok": ok,
        "first_line": first[:300],
        "wall_s": round(wall, 2),
    }


# ---------------------------------------------------------------- the summary


def summarize(results: list[dict]) -> dict:
    errors = [r for r in results if r["rc"] != 0]
    groups: dict[str, Counter] = {}
    for r in results:
        g = groups.setdefault(r["group"], Counter())
        g["tried"] += 1
        g["ok"] += r["ok"]
        g["one_line"] += r["one_line"]
        g["traceback"] += r["traceback"]
        g["changed"] += bool(r["changed"])
        g["executed"] += r["executed"]
    return {
        "tried": len(results),
        "cli": sum(r["via"] == "cli" for r in results),
        "api": sum(r["via"] == "api" for r in results),
        "ok": sum(r["ok"] for r in results),
        "errors": len(errors),
        "one_line_errors": sum(r["one_line"] for r in results),
        "accepted_rc0": sum(r["rc"] == 0 for r in results),
        "tracebacks": sum(r["traceback"] for r in results),
        "data_files_changed": sum(bool(r["changed"]) for r in results),
        "left_behind": sum(bool(r["left_behind"]) for r in results),
        "code_executed": sum(r["executed"] for r in results),
        "timed_out": sum(r["rc"] == -9 for r in results),
        "groups": {k: dict(v) for k, v in sorted(groups.items(), key=lambda kv: (int(kv[0].split()[0]), kv[0]))},
        "failing": [r["name"] for r in results if not r["ok"]],
    }


def markdown(summary: dict, results: list[dict], meta: dict) -> str:
    s = summary
    lines = [
        "# Bad inputs (issue #12)",
        "",
        f"`python benchmarks/bad_inputs.py` — {meta['date']}, commit {meta['commit']}, {meta['wall_s']:.0f} s.",
        "Each case runs in a subprocess in its own temporary folder (see the script's docstring for the exact",
        "definitions).",
        "",
        "| tried | CLI | API | as expected | one-line errors | accepted (rc 0) | tracebacks | data files changed "
        "| left behind | code executed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['tried']} | {s['cli']} | {s['api']} | {s['ok']} | {s['one_line_errors']} | {s['accepted_rc0']} "
        f"| {s['tracebacks']} | {s['data_files_changed']} | {s['left_behind']} | {s['code_executed']} |",
        "",
        "Goals: tracebacks 0, data files changed 0, code executed 0; every case an error of one line (or, for",
        "the cases that say so, a warning / a rebuild).",
        "",
        "## Per group (issue item)",
        "",
        "| group | tried | as expected | one-line | tracebacks | changed | executed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g, c in s["groups"].items():
        lines.append(
            f"| {g} | {c.get('tried', 0)} | {c.get('ok', 0)} | {c.get('one_line', 0)} | {c.get('traceback', 0)} "
            f"| {c.get('changed', 0)} | {c.get('executed', 0)} |"
        )
    bad = [r for r in results if not r["ok"]]
    lines += ["", f"## Not as expected ({len(bad)})", ""]
    if not bad:
        lines.append("None.")
    else:
        lines += ["| case | rc | why | first stderr line |", "|---|---:|---|---|"]
        for r in bad:
            why = []
            if r["traceback"]:
                why.append("traceback")
            if r["rc"] == 0 and r["expect"] != "ok":
                why.append("accepted")
            if r["rc"] != 0 and not r["traceback"] and not r["one_line"]:
                why.append(f"{r['stderr_lines']} lines")
            if r["changed"]:
                why.append("changed " + ", ".join(r["changed"]))
            if r["left_behind"]:
                why.append("left " + ", ".join(r["left_behind"]))
            if r["executed"]:
                why.append("CODE EXECUTED")
            text = r["first_line"].replace("|", "\\|")[:160]
            lines.append(f"| {r['name']} | {r['rc']} | {'; '.join(why)} | `{text}` |")
    return "\n".join(lines) + "\n"


def select(quick: bool = False, only: str | None = None) -> list[Case]:
    cases = [c for c in CASES if c.quick] if quick else list(CASES)
    if only:
        cases = [c for c in cases if fnmatch.fnmatch(c.name, f"*{only}*") or only in c.group]
    return cases


def run_all(cases: list[Case], jobs: int = 2, progress: bool = True) -> list[dict]:
    need_search = any(any(s[2] == "digits.skops" for s in c.setup) for c in cases)
    with tempfile.TemporaryDirectory(prefix="hwlat-bad-") as tmp:
        work = Path(tmp)
        fixtures = work / "fixtures"
        make_fixtures(fixtures, need_search)
        results: list[dict] = [None] * len(cases)  # type: ignore[list-item]
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(run_case, c, fixtures, work): i for i, c in enumerate(cases)}
            for done, fut in enumerate(futures, 1):
                i = futures[fut]
                results[i] = fut.result()
                if progress:
                    r = results[i]
                    mark = "ok " if r["ok"] else "BAD"
                    print(f"[{done}/{len(cases)}] {mark} {r['name']}: {r['first_line'][:110]}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the ~20 representative cases")
    ap.add_argument("--jobs", type=int, default=2, help="cases run in parallel (default 2)")
    ap.add_argument("--only", help="cases whose name contains this (or whose group does)")
    ap.add_argument("--out", help="results folder (default benchmarks/results for a full run; none for --quick/--only)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    cases = select(args.quick, args.only)
    if args.list:
        for c in cases:
            print(f"{c.group:22s} {c.name}")
        print(f"{len(cases)} cases ({sum(c.cli is not None for c in cases)} CLI)")
        return 0
    t0 = time.perf_counter()
    results = run_all(cases, args.jobs)
    summary = summarize(results)
    out = args.out or (None if (args.quick or args.only) else str(RESULTS))
    keys = ("tried", "ok", "one_line_errors", "accepted_rc0", "tracebacks", "data_files_changed", "code_executed")
    print(" ".join(f"{k}={summary[k]}" for k in keys))
    for r in results:
        if not r["ok"]:
            print(f"  not as expected: {r['name']}: {r['first_line'][:150]}")
    if out:
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            if commit and dirty:
                commit += " + uncommitted changes"
        except OSError:
            commit = "?"
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": commit or "?",
            "wall_s": time.perf_counter() - t0,
            "python": sys.version.split()[0],
        }
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, "bad_inputs.json").write_text(
            json.dumps({"meta": meta, "summary": summary, "cases": results}, indent=1) + "\n"
        )
        Path(out, "bad_inputs.md").write_text(markdown(summary, results, meta))
        print(f"wrote {out}/bad_inputs.json and bad_inputs.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
