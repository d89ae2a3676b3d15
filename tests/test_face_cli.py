"""The stable face command lines: enroll, face check / verify / eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from face import variants
from nlu.entities import with_check_digit
from tests.conftest import FACES_DIR, ROOT
from tests.face_support import needs_model, needs_photos, photo

pytestmark = [needs_model, needs_photos, pytest.mark.slow]


def _bot(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bot"]
    if config:
        command += ["--config", str(config)]
    return subprocess.run(command + list(args), cwd=ROOT, capture_output=True, text=True, timeout=300)


def _last_json(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, done.stderr[-2000:]
    return json.loads(lines[-1])


def test_face_check(tmp_path: Path) -> None:
    good = _last_json(_bot("face", "check", str(FACES_DIR / "obama/obama1.jpg")))
    assert good == {"ok": True, "faces": 1, "issues": [], "advice": "照片可以用。"}
    group = _last_json(_bot("face", "check", str(FACES_DIR / "multi/two-people.jpg")))
    assert group["ok"] is False and group["faces"] == 2 and group["issues"] == ["multiple_faces"]
    assert "一个人" in str(group["advice"])
    fake = tmp_path / "scan.jpg"
    fake.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    refused = _last_json(_bot("face", "check", str(fake)))
    assert refused["ok"] is False and refused["issues"] == ["not_an_image"]
    missing = _bot("face", "check", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_face_verify(tmp_path: Path) -> None:
    same = _last_json(_bot("face", "verify", str(FACES_DIR / "obama/obama1.jpg"),
                           str(FACES_DIR / "obama/obama2.jpg")))
    assert same["verified"] is True and same["issues"] == []
    assert isinstance(same["distance"], float) and same["distance"] <= same["threshold"]
    other = _last_json(_bot("face", "verify", str(FACES_DIR / "obama/obama1.jpg"),
                            str(FACES_DIR / "biden/biden1.jpg")))
    assert other["verified"] is False and other["distance"] > other["threshold"]
    dark = tmp_path / "dark.jpg"
    dark.write_bytes(variants.encode(variants.darken(photo("obama/obama2.jpg"), 0.3)))
    refused = _last_json(_bot("face", "verify", str(FACES_DIR / "obama/obama1.jpg"), str(dark)))
    assert refused["verified"] is False and "too_dark" in refused["issues"]
    assert refused["distance"] is None


def test_face_eval_prints_progress_and_figures() -> None:
    done = _bot("face", "eval", str(FACES_DIR / "pairs.csv"), "--images", str(FACES_DIR))
    assert done.returncode == 0, done.stderr[-2000:]
    result = _last_json(done)
    assert set(result) == {"pairs", "tar", "far", "accuracy", "threshold", "failed", "review"}
    assert result["pairs"] == 91 and result["failed"] == 0
    assert result["tar"] >= 0.97 and result["far"] <= 0.005
    assert "14/14" in done.stderr  # the progress bar


def test_enroll_registers_and_enrols(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"storage": {"data_dir": str(tmp_path / "var")}}),
                      encoding="utf-8")
    id_number = with_check_digit("63010219610804001")
    done = _bot("enroll", id_number, "欧巴马", str(FACES_DIR / "obama/obama1.jpg"), config=config)
    result = _last_json(done)
    assert done.returncode == 0 and result["ok"] is True and result["created"] is True
    assert result["id_number"] == id_number[:6] + "********" + id_number[-4:]
    # Re-enrolment replaces the template; a group photo is refused with advice.
    again = _last_json(_bot("enroll", id_number, "欧巴马", str(FACES_DIR / "obama/obama2.jpg"),
                            config=config))
    assert again["ok"] is True and again["created"] is False
    group = _bot("enroll", id_number, "欧巴马", str(FACES_DIR / "multi/obama-and-biden.jpg"),
                 config=config)
    assert group.returncode == 1 and _last_json(group)["issues"] == ["multiple_faces"]
    wrong = _bot("enroll", id_number[:17] + ("0" if id_number[17] != "0" else "1"), "欧巴马",
                 str(FACES_DIR / "obama/obama1.jpg"), config=config)
    assert wrong.returncode == 2 and "invalid ID number" in wrong.stderr
    # The same SQLite database serve would use now has the template.
    import sqlite3

    with sqlite3.connect(tmp_path / "var" / "bot.sqlite3") as conn:
        rows = conn.execute("select count(*) from face_templates").fetchone()
    assert rows == (1,)
