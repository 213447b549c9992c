"""The benchmark_model output parser: real output forms, round trips and garbage."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwlat.devices.adb.output import BenchOutputError, format_stat, parse, parse_stat, to_measurement
from hwlat.measure import Protocol
from hwlat.ops import OpSpec

OP = OpSpec("pwconv", cin=32, cout=64, h=16, w=16)

# Output forms as printed by benchmark_model builds over the years (shortened; the
# lines themselves are as public docs, issues and READMEs show them).
LITERT_2024 = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [1000]
INFO: Min warmup runs: [5]
INFO: Graph: [./models/tiny_float32.tflite]
INFO: Loaded model ./models/tiny_float32.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 2168 out of 2168 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 0.
INFO: The input model file size (MB): 24.6229
INFO: Initialized session in 119.515ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112

INFO: Running benchmark for at least 1000 iterations and at least 1 seconds but terminate if exceeding 150 seconds.



INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628

INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961
"""

X86_NO_PERCENTILES = """\
INFO: STARTING!
INFO: Graph: [../tflite/efficientdet/1.tflite]
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: Initialized session in 52.687ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=35 first=19105 curr=13909 min=13585 max=19105 avg=14452.5 std=1240

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=70 first=14941 curr=14066 min=13728 max=16145 avg=14290.9 std=452

INFO: Inference timings in us: Init: 52687, First inference: 19105, Warmup (avg): 14452.5, Inference (avg): 14290.9
"""

OLD_NO_PREFIX = """\
STARTING!
Min num runs: [50]
Num threads: [1]
Graph: [../../mobilenet_v1_1.0_224_quant.tflite]
Loaded model ../../mobilenet_v1_1.0_224_quant.tflite
resolved reporter
Initialized session in 21.039ms
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=751932

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=747738 curr=747428 min=747331 max=748577 avg=747733 std=293

Average inference timings in us: Warmup: 751932, Init: 21039, no stats: 747733
"""

LOGCAT = """\
07-14 13:14:52.190 22838 22838 I tflite  : Initialized session in 92.318ms.
07-14 13:14:52.218 22838 22838 I tflite  : Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
07-14 13:14:52.859 22838 22838 I tflite  : count=3 first=235158 curr=200386 min=199462 max=235158 avg=211669 std=16613 p5=199462 median=200386 p95=235158
07-14 13:14:52.859 22838 22838 I tflite  : Running benchmark for at least 25 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
07-14 13:14:56.520 22838 22838 I tflite  : count=25 first=187533 curr=140990 min=140071 max=195121 avg=145528 std=13583 p5=140545 median=141253 p95=187533
07-14 13:14:56.521 22838 22838 I tflite  : Inference timings in us: Init: 92318, First inference: 235158, Warmup (avg): 211669, Inference (avg): 145528
"""

# The README's profiling example: tables with a [start] column, no stat lines, the old summary.
PROFILE_OLD = (
    "============================== Run Order ==============================\n"
    "\t             [node type]\t  [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]\n"
    "\t                 CONV_2D\t    0.000\t    4.269\t    4.269\t  0.107%\t  0.107%\t     0.000\t        0\t[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]\n"
    "\t       DEPTHWISE_CONV_2D\t    4.270\t    2.150\t    2.150\t  0.054%\t  0.161%\t     0.000\t        0\t[MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6]\n"
    "\n"
    "============================== Top by Computation Time ==============================\n"
    "\t             [node type]\t  [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]\n"
    "\t                 CONV_2D\t    0.000\t    4.269\t    4.269\t  0.107%\t  0.107%\t     0.000\t        0\t[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]\n"
    "\n"
    "Number of nodes executed: 31\n"
    "============================== Summary by node type ==============================\n"
    "\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]\n"
    "\t                 CONV_2D\t       15\t     1.406\t    89.270%\t    89.270%\t     0.000\t        0\n"
    "\n"
    "Timings (microseconds): count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929\n"
    "Memory (bytes): count=0\n"
    "31 nodes observed\n"
    "\n\n"
    "Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9\n"
)

# Newer builds: an initialisation profile first, columns without [start], tabs turned to spaces.
PROFILE_NEW = """\
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=32 first=19834 curr=15648 min=14936 max=21608 avg=15997.4 std=1663

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=64 first=16067 curr=15102 min=14661 max=17579 avg=15517.6 std=551

INFO: Inference timings in us: Init: 32163, First inference: 19834, Warmup (avg): 15997.4, Inference (avg): 15517.6
INFO: Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
                                     [node type]          [first]        [avg ms]            [%]          [cdf%]          [mem KB]        [times called]  [Name]
                         ModifyGraphWithDelegate            6.348           6.348        55.640%         55.640%          7148.000                1       ModifyGraphWithDelegate/0
                                 AllocateTensors            5.061           5.061        44.360%        100.000%         10292.000                1       AllocateTensors/0

Timings (microseconds): count=1 curr=11409
Memory (bytes): count=0
2 nodes observed



INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
                                     [node type]          [first]        [avg ms]            [%]          [cdf%]          [mem KB]        [times called]  [Name]
                                        QUANTIZE            0.199           0.203         1.328%          1.328%             0.000                1       [tfl.quantize]:0
                   Convolution (NHWC, QC8) IGEMM            0.398           0.407         2.658%          3.986%             0.000                1       Delegate/Convolution (NHWC, QC8) IGEMM:0
                  Convolution (NHWC, QC8) DWConv            0.428           0.051         4.317%          8.304%             0.000               13       Delegate/Convolution (NHWC, QC8) DWConv:1

Timings (microseconds): count=64 first=15800 curr=15000 min=14500 max=17400 avg=15400.2 std=540
Memory (bytes): count=0
3 nodes observed
"""


def test_litert_2024_output():
    out = parse(LITERT_2024)
    assert out.warmup.count == 9 and out.warmup.median == 51962
    t = out.timed
    assert (t.count, t.first, t.min, t.max, t.avg, t.std) == (1000, 52162, 49088, 686105, 63743.2, 60716)
    assert (t.p5, t.median, t.p95) == (49620, 51891, 68628)
    assert t.center_us == 51891  # the median, not the outlier-pulled mean
    assert (out.init_us, out.first_us, out.warmup_avg_us, out.inference_avg_us) == (119515, 87112, 58147.4, 63743.2)
    assert out.errors == () and out.profile == ()


def test_build_without_percentiles_uses_the_mean():
    out = parse(X86_NO_PERCENTILES)
    assert out.timed.count == 70 and out.timed.median is None
    assert out.timed.center_us == 14290.9
    assert out.timed.bounds() == (13728, 16145)  # min/max stand in for p5/p95


def test_old_output_without_prefix_and_all_same_warmup():
    out = parse(OLD_NO_PREFIX)
    assert out.warmup.count == 1 and out.warmup.curr == 751932 and out.warmup.center_us == 751932
    assert out.timed.count == 50 and out.timed.center_us == 747733
    assert out.inference_avg_us == 747733  # "no stats: ..."
    assert out.init_us == 21039 and out.warmup_avg_us == 751932


def test_logcat_prefixed_lines():
    out = parse(LOGCAT)
    assert out.warmup.count == 3 and out.timed.count == 25 and out.timed.median == 141253
    assert out.init_us == 92318


def test_profile_tables_read_by_header_name():
    out = parse(PROFILE_OLD)
    assert out.timed is None  # the example shows no stat lines, only the summary
    assert out.inference_avg_us == 79760.9 and out.warmup_avg_us == 83235 and out.init_us == 38467
    run = out.table("Run Order")
    assert run.columns[:3] == ("nodetype", "start", "first")
    assert run.column("[node type]") == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert run.column("avg ms") == [4.269, 2.150]
    assert run.column("Name")[1] == "[MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6]"
    assert out.table("Summary by node type").column("count") == [15]
    assert out.profile_total.count == 50 and out.profile_total.avg == 79732  # sum over nodes, kept apart
    with pytest.raises(KeyError, match="no column 'flops'"):
        run.column("flops")


def test_new_profile_sections_and_columns():
    out = parse(PROFILE_NEW)
    assert out.timed.count == 64 and out.timed.avg == 15517.6  # not the profile's Timings line
    init = out.table("Run Order", section="init")
    assert init.column("node type") == ["ModifyGraphWithDelegate", "AllocateTensors"]
    assert "start" not in init.columns
    run = out.table("Run Order", section="run")
    assert run.column("node type")[1] == "Convolution (NHWC, QC8) IGEMM"
    assert run.column("times called") == [1, 1, 13] and run.column("%")[2] == 4.317
    assert run.column("name")[1] == "Delegate/Convolution (NHWC, QC8) IGEMM:0"
    assert out.profile_total.avg == 15400.2


@pytest.mark.parametrize(
    "line, expect",
    [
        ("INFO: count=0", dict(count=0, center_us=None)),
        ("INFO: count=0 p5=0 median=0 p95=0", dict(count=0, center_us=None)),
        ("INFO: count=5 curr=700(all same) p5=700 median=700 p95=700", dict(count=5, all_same=True, center_us=700)),
        ("count=5 curr=700(all same)", dict(count=5, all_same=True, center_us=700)),
        ("curr=81350 count=50 min=77385 max=88213 avg=79732 std=1929", dict(count=50, first=None, center_us=79732)),
        (
            "count=3 first=1687920 curr=1687930 min=1687900 max=1687950 avg=1.68792e+06 std=20",
            dict(count=3, avg=1687920.0, center_us=1687920.0),
        ),
    ],
)
def test_degenerate_and_exponent_stat_lines(line, expect):
    s = parse_stat(line)
    for key, value in expect.items():
        assert getattr(s, key) == value, key


def test_exponent_in_summary_line():
    out = parse(
        "INFO: Inference timings in us: Init: 1007529, First inference: 4098, "
        "Warmup (avg): 1.68659e+06, Inference (avg): 1.68792e+06"
    )
    assert out.inference_avg_us == 1687920.0 and out.warmup_avg_us == 1686590.0 and out.timed is None


def test_failures_and_garbage_have_clear_errors():
    with pytest.raises(BenchOutputError, match="benchmark_model failed: .*Failed to allocate tensors"):
        parse(
            "INFO: STARTING!\nERROR: Node number 57 (BATCH_MATMUL) failed to prepare.\nERROR: Failed to allocate tensors!\n"
        )
    with pytest.raises(BenchOutputError, match="no benchmark_model statistics .*'hello world'"):
        parse("hello world\n")
    with pytest.raises(BenchOutputError, match="bad value avg='12,5'"):
        parse("INFO: count=3 first=1 curr=2 min=1 max=3 avg=12,5 std=1")
    with pytest.raises(BenchOutputError, match="min=9 > max=3"):
        parse_stat("count=3 first=9 curr=3 min=9 max=3 avg=5 std=1")
    with pytest.raises(BenchOutputError, match="percentiles out of order"):
        parse_stat("count=3 first=1 curr=3 min=1 max=9 avg=5 std=1 p5=8 median=4 p95=9")
    with pytest.raises(BenchOutputError, match="unexpected text 'banana'"):
        parse_stat("count=3 curr=5 banana")
    with pytest.raises(TypeError):
        parse(b"count=1 curr=5")


def test_truncated_output_has_no_timed_runs():
    warm_only = LITERT_2024.split("INFO: Running benchmark for at least 1000")[0]
    out = parse(warm_only)
    assert out.warmup.count == 9 and out.timed is None
    with pytest.raises(BenchOutputError, match="stopped during the warm-up"):
        to_measurement([out], item=OP, device_key="adb/t1/b1/fp32/serial=x", protocol=Protocol(), wall_s=1.0)


# ---------------------------------------------------------------- measurement
def _output(values, warm=(900, 800)):
    text = (
        "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.\n"
        f"INFO: {format_stat(warm)}\n\n"
        "INFO: Running benchmark for at least 1 iterations and at least 0.01 seconds but terminate if exceeding 60 seconds.\n"
        f"INFO: {format_stat(values)}\n"
    )
    return parse(text)


def test_rounds_become_one_measurement():
    rounds = [[100] * 10 + [101] * 10, [102] * 20, [100] * 19 + [5000], [101] * 20, [103] * 20]
    outs = [_output(r) for r in rounds]
    m = to_measurement(
        outs, item=OP, device_key="adb/t1/b1/fp32/serial=x", protocol=Protocol(), wall_s=2.0, extra=[("temp_c", 33.0)]
    )
    assert m.rounds == 5 and m.n == 100
    assert m.round_medians_ms == pytest.approx((0.101, 0.102, 0.100, 0.101, 0.103))  # each round's nearest-rank median
    assert m.median_ms == pytest.approx(0.101)
    assert m.mean_ms == pytest.approx(sum(map(sum, rounds)) / 100 / 1e3)
    assert (m.ci_low_ms, m.ci_high_ms) == pytest.approx((0.0995, 0.1035))  # min..max of 5 rounds, ±0.5 µs
    assert dict(m.extra) == {"temp_c": 33.0, "iqr_estimated": 1.0}
    assert m.kind == "pwconv" and m.op_key == OP.key and m.wall_s == 2.0
    assert m.stable is False  # rel CI 2.5 % > 2 %
    assert len(m.warnings) == 1 and "CI ±2.5%" in m.warnings[0]  # reaches the user with the result
    assert to_measurement(outs, item=OP, device_key="k", protocol=Protocol(rel_ci=0.05), wall_s=1).stable


def test_single_fixed_invocation():
    out = parse(LITERT_2024)
    m = to_measurement([out], item=OP, device_key="k", protocol=Protocol.fixed(), wall_s=3.0)
    assert m.rounds == 1 and m.n == 1000 and m.median_ms == pytest.approx(51.891)
    assert m.p5_ms == pytest.approx(49.620) and m.p95_ms == pytest.approx(68.628)
    assert m.iqr_ms == pytest.approx(0.41 * (68628 - 49620) / 1e3)
    assert 0 < m.rel_ci < 0.01


def test_median_below_resolution_falls_back_to_the_mean():
    m = to_measurement([_output([0, 0, 1, 0])], item=OP, device_key="k", protocol=Protocol(), wall_s=1)
    assert m.median_ms == pytest.approx(0.25e-3)
    with pytest.raises(BenchOutputError, match="below benchmark_model's 1 µs resolution"):
        to_measurement([_output([0, 0, 0])], item=OP, device_key="k", protocol=Protocol(), wall_s=1)


# ---------------------------------------------------------------- properties
times_us = st.lists(st.integers(min_value=0, max_value=10**8), min_size=1, max_size=300)


@given(times_us, st.booleans())
def test_stat_line_round_trip(values, percentiles):
    s = parse_stat("INFO: " + format_stat(values, percentiles))
    ordered = sorted(values)
    n = len(values)
    assert s.count == n
    if min(values) == max(values):
        assert s.all_same == (n > 1) and s.curr == values[-1]
    else:
        assert (s.first, s.curr, s.min, s.max) == (values[0], values[-1], ordered[0], ordered[-1])
        assert s.avg == pytest.approx(sum(values) / n, rel=1e-5)  # 6 significant digits
    if percentiles:
        assert (s.p5, s.median, s.p95) == (ordered[n * 5 // 100], ordered[n // 2], ordered[n * 95 // 100])


prefixes = st.sampled_from(["INFO: ", "", "07-14 13:14:52.859 22838 22838 I tflite  : "])


@given(times_us, times_us, prefixes, st.booleans())
def test_whole_output_round_trip(warm, timed, prefix, percentiles):
    text = "\n".join(
        [
            f"{prefix}STARTING!",
            f"{prefix}Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.",
            prefix + format_stat(warm, percentiles),
            "",
            f"{prefix}Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.",
            prefix + format_stat(timed, percentiles),
            "",
            f"{prefix}Inference timings in us: Init: 1234, First inference: {warm[0]}, "
            f"Warmup (avg): {sum(warm) / len(warm):g}, Inference (avg): {sum(timed) / len(timed):g}",
        ]
    )
    out = parse(text)
    assert out.warmup.count == len(warm) and out.timed.count == len(timed)
    assert out.init_us == 1234 and out.first_us == warm[0]
    assert out.inference_avg_us == pytest.approx(sum(timed) / len(timed), rel=1e-5)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_garbage_is_rejected_with_a_clear_error(text):
    try:
        out = parse(text)
    except BenchOutputError as exc:
        assert str(exc)  # a message, never an empty error
    else:  # only text that holds benchmark_model's own markers can parse
        assert out.timed or out.warmup or out.profile or out.inference_avg_us is not None or out.init_us is not None


@given(
    st.sampled_from(["first", "curr", "min", "max", "avg", "std", "p5", "median", "p95"]),
    st.text(alphabet="abcxyz,;!?-()", min_size=1, max_size=6),
)
def test_corrupted_values_are_named(key, junk):
    line = "INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628"
    bad = line.replace(f" {key}=", f" {key}={junk}", 1)
    with pytest.raises(BenchOutputError) as info:
        parse(bad)
    assert key in str(info.value) or junk.strip() in str(info.value)


def test_format_stat_matches_the_real_tool():
    # Lines as the tool prints them (from the samples above): same fields, same number formats.
    assert format_stat([700] * 5) == "count=5 curr=700(all same) p5=700 median=700 p95=700"
    assert format_stat([700], percentiles=False) == "count=1 curr=700"
    assert format_stat([]) == "count=0 p5=0 median=0 p95=0"
    line = format_stat([1687000, 1688000, 1688760])
    assert line.startswith("count=3 first=1687000 curr=1688760 min=1687000 max=1688760 avg=1.68792e+06 std=")
    assert math.isclose(parse_stat(line).avg, 1687920)
