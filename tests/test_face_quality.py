"""The quality gate and verification with the real Dlib model on real photos.

Variants (dark, bright, blurred, tilted, tiny, cut off, backlit) are made in code from the
photos in FACES_DIR; a few core tests use skimage's astronaut so they run everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from face import variants
from face.engine import cosine_distance
from face.quality import ADVICE, ORDER, advice_for
from tests.face_support import astronaut, embedding, engine, needs_model, needs_photos, photo, photo_bytes

pytestmark = [needs_model]

GOOD = ["alex_lacamoire/alex1.jpg", "alex_lacamoire/alex2.png", "biden/biden1.jpg",
        "biden/biden2.jpg", "kit_harington/kit1.jpg", "kit_harington/kit2.jpg",
        "lin_manuel_miranda/lin1.png", "obama/obama-240p.jpg", "obama/obama-small.jpg",
        "obama/obama1.jpg", "obama/obama2.jpg", "obama/obama3.jpg", "rose_leslie/rose1.jpg",
        "rose_leslie/rose2.jpg", "edge/rgba-32bit.png"]


def _issues(image: np.ndarray) -> list[str]:
    return engine().analyse(image, embed=False).issues


def _box(image: np.ndarray) -> tuple[int, int, int, int]:
    face = engine().detect(image)[0]
    return face.left, face.top, face.right, face.bottom


# ---------------------------------------------------------------- core (astronaut)


def test_astronaut_passes_and_matches_a_recompressed_copy() -> None:
    image = astronaut()
    analysis = engine().analyse(variants.encode(image))
    assert analysis.ok, analysis.issues
    assert analysis.faces == 1
    verdict = engine().verify(analysis.embedding or [], variants.encode(image, quality=60))
    assert verdict.verified and verdict.distance is not None and verdict.distance < 0.02


def test_astronaut_darkened_and_blurred_get_codes_and_advice() -> None:
    image = astronaut()
    dark = _issues(variants.darken(image, 0.25))
    assert "too_dark" in dark
    assert advice_for(dark).startswith(ADVICE["too_dark"])
    assert "blurry" in _issues(variants.blur(image, 0.006))


def test_every_code_has_chinese_advice() -> None:
    for code in ORDER:
        assert ADVICE[code] and all("\u4e00" <= ch <= "\u9fff" for ch in ADVICE[code][:2])


def test_a_photo_without_a_face() -> None:
    blank = np.full((480, 640, 3), 180, dtype=np.uint8)
    analysis = engine().analyse(variants.encode(blank))
    assert analysis.issues == ["no_face"] and analysis.embedding is None


# ---------------------------------------------------------------- real photos


@needs_photos
@pytest.mark.parametrize("name", GOOD)
def test_real_photos_pass_the_gate(name: str) -> None:
    analysis = engine().analyse(photo_bytes(name), embed=False)
    assert analysis.issues == [], (name, analysis.metrics)
    assert analysis.faces == 1


@needs_photos
@pytest.mark.parametrize("name", ["multi/obama-and-biden.jpg", "multi/kit-with-rose.jpg",
                                  "multi/two-people.jpg"])
def test_group_photo_is_refused_as_multiple_faces(name: str) -> None:
    analysis = engine().analyse(photo_bytes(name))
    assert "multiple_faces" in analysis.issues
    assert analysis.faces >= 2 and analysis.embedding is None


@needs_photos
@pytest.mark.parametrize("name", ["edge/obama-partial-face1.jpg", "edge/obama-partial-face2.jpg"])
def test_face_partly_out_of_frame_is_cut_off(name: str) -> None:
    assert "face_cut_off" in _issues(photo(name))


@needs_photos
@pytest.mark.parametrize("name", ["obama/obama1.jpg", "rose_leslie/rose2.jpg", "biden/biden2.jpg"])
def test_variants_get_the_right_codes(name: str) -> None:
    image = photo(name)
    box = _box(image)
    assert "too_dark" in _issues(variants.darken(image, 0.3))
    assert "too_bright" in _issues(variants.brighten(image))
    assert "blurry" in _issues(variants.blur(image, 0.006))
    assert "not_frontal" in _issues(variants.tilt(image, 35))
    assert "backlit" in _issues(variants.backlight(image, box))
    assert _issues(variants.shrink(image, 100)) in (["face_too_small"], ["no_face"])
    assert "face_cut_off" in _issues(variants.crop_side(image, box, keep=0.7))
    assert _issues(variants.tilt(image, 5)) == []  # a slight tilt is fine


@needs_photos
def test_tiny_face_is_found_and_called_too_small() -> None:
    assert _issues(variants.shrink(photo("obama/obama1.jpg"), 100)) == ["face_too_small"]


@needs_photos
def test_looking_up_or_down_is_not_frontal() -> None:
    assert "not_frontal" in _issues(variants.squeeze(photo("rose_leslie/rose2.jpg")))


@needs_photos
def test_exif_rotated_selfie_is_verified() -> None:
    reference = list(embedding("obama/obama1.jpg"))
    selfie = variants.exif_rotated(photo("obama/obama2.jpg"))
    verdict = engine().verify(reference, selfie)
    assert verdict.verified, (verdict.issues, verdict.distance)
    assert verdict.analysis.rotated == 0


@needs_photos
def test_sideways_photo_without_orientation_tag_is_turned() -> None:
    reference = list(embedding("obama/obama1.jpg"))
    sideways = np.ascontiguousarray(np.rot90(photo("obama/obama2.jpg"), 1))
    verdict = engine().verify(reference, variants.encode(sideways))
    assert verdict.verified and verdict.analysis.rotated in (90, 270)


@needs_photos
def test_webp_and_rgba_png_are_verified() -> None:
    reference = list(embedding("obama/obama1.jpg"))
    webp = variants.encode(photo("obama/obama2.jpg"), "WEBP")
    assert engine().verify(reference, webp).verified
    rgba = photo_bytes("edge/rgba-32bit.png")  # a 32-bit RGBA PNG of the same man
    assert engine().verify(reference, rgba).verified


@needs_photos
@pytest.mark.parametrize(("a", "b"), [("obama/obama1.jpg", "obama/obama3.jpg"),
                                      ("biden/biden1.jpg", "biden/biden2.jpg"),
                                      ("rose_leslie/rose1.jpg", "rose_leslie/rose2.jpg"),
                                      ("alex_lacamoire/alex1.jpg", "alex_lacamoire/alex2.png")])
def test_genuine_pairs_are_accepted(a: str, b: str) -> None:
    verdict = engine().verify(list(embedding(a)), photo_bytes(b))
    assert verdict.verified, verdict.distance


@needs_photos
@pytest.mark.parametrize(("a", "b"), [("obama/obama1.jpg", "biden/biden2.jpg"),
                                      ("kit_harington/kit1.jpg", "rose_leslie/rose2.jpg"),
                                      ("alex_lacamoire/alex1.jpg", "lin_manuel_miranda/lin1.png"),
                                      ("kit_harington/kit2.jpg", "alex_lacamoire/alex1.jpg")])
def test_impostor_pairs_are_refused(a: str, b: str) -> None:
    verdict = engine().verify(list(embedding(a)), photo_bytes(b))
    assert not verdict.verified and verdict.issues == []
    assert verdict.distance is not None and verdict.distance > verdict.threshold


@needs_photos
def test_a_group_selfie_never_verifies_even_with_the_right_person_in_it() -> None:
    verdict = engine().verify(list(embedding("obama/obama1.jpg")),
                              photo_bytes("multi/obama-and-biden.jpg"))
    assert not verdict.verified and verdict.issues == ["multiple_faces"]
    assert verdict.distance is None


@needs_photos
@pytest.mark.slow
def test_accuracy_goal_on_the_pair_list() -> None:
    from face.evaluate import evaluate
    from tests.conftest import FACES_DIR

    result = evaluate(engine(), FACES_DIR / "pairs.csv", FACES_DIR)
    assert result["pairs"] == 91 and result["failed"] == 0
    assert result["tar"] >= 0.97 and result["far"] <= 0.005


def test_distance_is_cosine() -> None:
    assert cosine_distance([1, 0], [1, 0]) == pytest.approx(0)
    assert cosine_distance([1, 0], [0, 1]) == pytest.approx(1)
