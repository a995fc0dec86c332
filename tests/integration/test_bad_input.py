"""Bad input gives one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO


def run_edged(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "edged", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def assert_one_clear_line(code: int, stderr: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("edged: error:")
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_text_file_named_wav(tmp_path: Path, models_dir: Path) -> None:
    fake = tmp_path / "speech.wav"
    fake.write_text("hello, I am not audio\n")
    code, out, err, _ = run_edged("translate", str(fake), "--to", "en")
    assert_one_clear_line(code, err, "speech.wav", "not a WAV file")
    assert out == ""


def test_truncated_wav(tmp_path: Path, speech_dir: Path, models_dir: Path) -> None:
    blob = (speech_dir / "living_room_light_es.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(blob[: len(blob) // 3])
    code, _, err, _ = run_edged("translate", str(cut), "--to", "en")
    assert_one_clear_line(code, err, "cut.wav", "truncated")


def test_missing_input_file(tmp_path: Path) -> None:
    code, _, err, _ = run_edged("translate", str(tmp_path / "absent.wav"), "--to", "en")
    assert_one_clear_line(code, err, "absent.wav")


@pytest.mark.parametrize("flag", ["--to", "--from"])
def test_unknown_language_code(flag: str, speech_dir: Path) -> None:
    code, _, err, _elapsed = run_edged(
        "translate", str(speech_dir / "living_room_light_es.wav"), flag, "xx"
    )
    assert_one_clear_line(code, err, "'xx'")
    assert code == 78


def test_config_with_a_typo_names_the_key_and_exits_78(tmp_path: Path, speech_dir: Path) -> None:
    config = tmp_path / "edged.toml"
    config.write_text("[mt]\ntargtes = ['en']\n")
    code, _, err, elapsed = run_edged(
        "-c", str(config), "translate", str(speech_dir / "living_room_light_es.wav")
    )
    assert_one_clear_line(code, err, "mt.targtes", "mt.targets")
    assert code == 78
    assert elapsed < 10  # fails before any model loads


def test_missing_model_file_names_file_and_fix(
    tmp_path: Path, models_dir: Path, speech_dir: Path
) -> None:
    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken, symlinks=True, ignore=shutil.ignore_patterns("model.bin"))
    env = dict(os.environ, EDGED_MODELS_DIR=str(broken))
    code, _, err, _ = run_edged(
        "translate", str(speech_dir / "living_room_light_es.wav"), "--to", "en", env=env
    )
    assert_one_clear_line(code, err, "model.bin", "edged models install whisper-base")


def test_corrupt_model_file_is_caught_before_loading(
    tmp_path: Path, models_dir: Path, speech_dir: Path
) -> None:
    broken = tmp_path / "models"
    shutil.copytree(models_dir / "silero-vad", broken / "silero-vad")
    for name in os.listdir(models_dir):
        if name != "silero-vad" and not name.startswith("."):
            (broken / name).symlink_to(models_dir / name)
    vad = broken / "silero-vad" / "silero_vad.onnx"
    data = bytearray(vad.read_bytes())
    data[1000:1010] = b"\x00" * 10
    vad.write_bytes(bytes(data))
    env = dict(os.environ, EDGED_MODELS_DIR=str(broken))
    code, _, err, _ = run_edged(
        "translate", str(speech_dir / "living_room_light_es.wav"), "--to", "en", env=env
    )
    assert_one_clear_line(code, err, "silero_vad.onnx", "edged models install silero-vad")


def test_speak_must_be_a_target(speech_dir: Path) -> None:
    code, _, err, _ = run_edged(
        "translate", str(speech_dir / "living_room_light_es.wav"), "--to", "en", "--speak", "de"
    )
    assert_one_clear_line(code, err, "--speak de")


def test_dev_zero_is_not_a_wav_and_not_a_memory_error() -> None:
    code, out, err, _ = run_edged("translate", "/dev/zero", "--to", "en")
    assert_one_clear_line(code, err, "/dev/zero", "not a WAV file")
    assert code == 4 and out == ""


def damaged_models(tmp_path: Path, models_dir: Path, bundle: str, name: str) -> Path:
    """A models dir whose `bundle` has file `name` overwritten with junk of the same size and
    the old modification time, as bit rot on an SD card leaves it: the quick check passes."""
    damaged = tmp_path / "models"
    damaged.mkdir()
    for entry in os.listdir(models_dir):
        if entry == bundle:
            shutil.copytree(models_dir / entry, damaged / entry)
        elif not entry.startswith("."):
            (damaged / entry).symlink_to(models_dir / entry)
    path = damaged / bundle / name
    before = path.stat()
    path.write_bytes(random.Random(9).randbytes(before.st_size))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return damaged


@pytest.mark.parametrize(
    ("bundle", "name"), [("silero-vad", "silero_vad.onnx"), ("whisper-base", "tokenizer.json")]
)
def test_a_damaged_bundle_with_its_old_mtime_is_one_line_and_exit_3(
    tmp_path: Path, models_dir: Path, speech_dir: Path, bundle: str, name: str
) -> None:
    env = dict(os.environ, EDGED_MODELS_DIR=str(damaged_models(tmp_path, models_dir, bundle, name)))
    code, _, err, _ = run_edged(
        "translate", str(speech_dir / "living_room_light_es.wav"), "--to", "en", env=env
    )
    assert_one_clear_line(code, err, f"'{bundle}'", f"edged models verify {bundle}")
    assert code == 3


def test_a_voice_that_is_not_spoken_is_not_loaded(
    tmp_path: Path, models_dir: Path, speech_dir: Path
) -> None:
    """Voices load on first use (issue 12, point 3): with the English Piper voice damaged, a
    run that speaks only Spanish (espeak-ng) never touches it."""
    voice = "piper-en_US-joe-medium"
    env = dict(
        os.environ,
        EDGED_MODELS_DIR=str(damaged_models(tmp_path, models_dir, voice, "model.onnx")),
    )
    out = tmp_path / "spoken.wav"
    code, stdout, err, _ = run_edged(
        "translate",
        str(speech_dir / "living_room_light_en.wav"),
        "--to",
        "es",
        "--tts",
        str(out),
        env=env,
    )
    assert code == 0, err
    events = [json.loads(line) for line in stdout.splitlines()]
    starts = [e for e in events if e["type"] == "tts.start"]
    assert [e["voice"] for e in starts] == ["espeak-ng:es"]
    assert out.stat().st_size > 10_000
    # ... and speaking English with it is the one-line error naming the voice's bundle.
    code, stdout, err, _ = run_edged(
        "translate",
        str(speech_dir / "living_room_light_es.wav"),
        "--to",
        "en",
        "--tts",
        str(out),
        env=env,
    )
    errors = [json.loads(line) for line in stdout.splitlines() if '"error"' in line]
    assert [e["code"] for e in errors] == ["tts-failed"]
    assert f"edged models verify {voice}" in errors[0]["message"]


def test_speak_without_tts_says_it_needs_a_file(speech_dir: Path) -> None:
    """Issue 12, point 1: the README's `--speak de` example produced no audio and no word."""
    code, out, err, _ = run_edged(
        "translate",
        str(speech_dir / "living_room_light_es.wav"),
        "--to",
        "en",
        "--to",
        "de",
        "--speak",
        "de",
    )
    assert_one_clear_line(code, err, "--speak de", "--tts FILE")
    assert code == 78 and out == ""


def test_bench_without_its_extra_names_the_pip_command() -> None:
    """Issue 10, defect 11: `pip install .` lacks jiwer/sacrebleu/matplotlib. Their absence
    is made real in a fresh interpreter (a None entry in sys.modules makes import fail)."""
    script = (
        "import sys\n"
        "sys.modules['jiwer'] = sys.modules['sacrebleu'] = None\n"
        "from edged.cli import main\n"
        "sys.exit(main(['bench', '--out', sys.argv[1]]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "/nonexistent/bench-out"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert_one_clear_line(
        proc.returncode, proc.stderr, "jiwer, sacrebleu", "pip install 'edged[bench]'"
    )
