"""The quality gate: what is wrong with a selfie, as codes plus plain Chinese advice.

Codes (stable; the audit log and the staff console show them):

=================  ==========================================================
``not_an_image``   the file is not a photo we can read
``too_large``      the file or its pixel count is over the limit
``no_face``        no face found
``multiple_faces`` more than one face in the picture
``face_too_small`` the face is too small (too far away)
``face_cut_off``   part of the face is outside the picture
``not_frontal``    the head is turned, tilted or looking up/down (landmarks)
``too_dark``       the face is too dark
``too_bright``     the face is over-exposed
``backlit``        strong light behind the person, the face is in shadow
``blurry``         the face is not sharp
=================  ==========================================================

Thresholds were calibrated on the real photos in ``../shared/faces`` (none of which may
be refused) and on darkened, brightened, blurred, turned, shrunk and cropped variants made
from them in code (see ``tests/test_face_quality.py`` and BENCHMARKS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bot.core.i18n import join, tr
from face.detection import DetectedFace

# The order in which problems are told: the first is the one to fix first.
ORDER = ("not_an_image", "too_large", "no_face", "multiple_faces", "face_too_small", "face_cut_off",
         "not_frontal", "too_dark", "backlit", "too_bright", "blurry")

ADVICE = {
    "not_an_image": tr("收到的不是照片，请直接用手机拍一张照片发过来。"),
    "too_large": tr("照片文件太大了，请用手机直接拍一张普通照片发过来。"),
    "no_face": tr("照片里没有找到人脸，请把脸放在画面中间，正对手机再拍一张。"),
    "multiple_faces": tr("照片里不止一个人，请只拍本人一个人，其他人请离开画面。"),
    "face_too_small": tr("脸离得太远、太小了，请把手机拿近一点，让脸占满画面的一半左右。"),
    "face_cut_off": tr("脸没有拍全，请把整张脸（从头顶到下巴）都放进画面里。"),
    "not_frontal": tr("请正对手机镜头，不要侧脸、歪头、抬头或低头。"),
    "too_dark": tr("光线太暗，请开灯或到窗边亮一点的地方再拍一张。"),
    "backlit": tr("背后太亮、脸太暗了，请不要背对窗户或灯，转过身让光照在脸上。"),
    "too_bright": tr("光线太强，脸上发白，请避开直射的阳光或强灯光再拍。"),
    "blurry": tr("照片有点模糊，请拿稳手机，对好焦再拍一张。"),
}


@dataclass(frozen=True)
class QualityThresholds:
    """Calibrated limits (see module docstring); all relative to the <= 1024 px image."""

    min_face_px: int = 60            # face box width in pixels
    min_face_ratio: float = 0.08     # face width / shorter image side
    other_face_ratio: float = 0.3    # another face counts if at least this wide vs the largest
    other_face_score: float = 0.3    # ... and the detector is this sure (HOG guesses score lower)
    min_brightness: float = 60.0     # mean luma (0-255) inside the face box
    max_brightness: float = 200.0
    max_clipped: float = 0.2        # share of face pixels at >= 250
    backlit_gap: float = 50.0        # background mean minus face mean
    backlit_face_max: float = 110.0  # ... only when the face itself is dim
    min_sharpness: float = 25.0      # variance of the Laplacian on the face at 128 px
    max_yaw: float = 0.3            # nose offset from the eyes' middle / eye distance
    pitch_range: tuple[float, float] = (0.4, 1.05)  # nose drop below the eyes / eye distance
    max_roll: float = 25.0           # degrees
    edge_margin: float = 0.08        # of the face width/height that must be inside the frame


def advice_for(issues: list[str]) -> str:
    """One short message: the most important problem first, at most two."""
    known = [code for code in ORDER if code in issues]
    if not known:
        return tr("照片可以用。")
    return join("", [ADVICE[code] for code in known[:2]])


def ordered(issues: list[str]) -> list[str]:
    return [code for code in ORDER if code in issues] + [c for c in issues if c not in ORDER]


def _luma(image: NDArray[np.uint8]) -> NDArray[np.float32]:
    rgb = image.astype(np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def landmark_pose(points: NDArray[np.float64]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) proxies from dlib's 5 points: eye corners 0-1, 2-3 and the nose 4."""
    eye_a = points[0:2].mean(axis=0)  # the person's left eye (right in the picture)
    eye_b = points[2:4].mean(axis=0)
    middle = (eye_a + eye_b) / 2
    vector = eye_a - eye_b
    distance = float(np.hypot(*vector)) or 1.0
    roll = math.degrees(math.atan2(vector[1], vector[0]))
    # Express the nose in the eyes' own frame (x along the eye line).
    ux, uy = vector / distance
    nose = points[4] - middle
    along = float(nose[0] * ux + nose[1] * uy)
    across = float(-nose[0] * uy + nose[1] * ux)
    return along / distance, across / distance, roll


def counts_as_face(other: DetectedFace, largest: DetectedFace, q: QualityThresholds) -> bool:
    """A second detection counts as a person if it is not tiny and not a weak guess."""
    return other.width >= q.other_face_ratio * largest.width and other.score >= q.other_face_score


def assess(image: NDArray[np.uint8], faces: list[DetectedFace],
           q: QualityThresholds) -> tuple[list[str], dict[str, float]]:
    """Quality codes and the measurements behind them (the first, surest face is judged)."""
    import cv2  # deferred: OpenCV is heavy, loaded by face work only

    if not faces:
        return ["no_face"], {}
    issues: list[str] = []
    face = faces[0]
    others = [f for f in faces[1:] if counts_as_face(f, face, q)]
    if others:
        issues.append("multiple_faces")
    height, width = image.shape[:2]
    metrics: dict[str, float] = {"face_px": float(face.width),
                                 "face_ratio": face.width / min(height, width)}
    if face.width < q.min_face_px or metrics["face_ratio"] < q.min_face_ratio:
        issues.append("face_too_small")

    margin_x, margin_y = q.edge_margin * face.width, q.edge_margin * face.height
    outside = min(face.left + margin_x, face.top + margin_y,
                  width - face.right + margin_x, height - face.bottom + margin_y)
    metrics["edge"] = float(min(face.left, face.top, width - face.right, height - face.bottom))
    # The 5 landmarks must be inside too; dlib guesses them for a half-visible face.
    points = face.landmarks
    landmarks_inside = bool(np.all((points[:, 0] >= 0) & (points[:, 0] < width)
                                   & (points[:, 1] >= 0) & (points[:, 1] < height)))
    if outside < 0 or not landmarks_inside:
        issues.append("face_cut_off")

    yaw, pitch, roll = landmark_pose(points)
    metrics.update(yaw=round(yaw, 3), pitch=round(pitch, 3), roll=round(roll, 1))
    if (abs(yaw) > q.max_yaw or not q.pitch_range[0] <= pitch <= q.pitch_range[1]
            or abs(roll) > q.max_roll):
        issues.append("not_frontal")

    x0, y0 = max(0, face.left), max(0, face.top)
    x1, y1 = min(width, face.right), min(height, face.bottom)
    luma = _luma(image)
    box = luma[y0:y1, x0:x1]
    if box.size == 0:
        return ordered(issues + ["face_cut_off"]), metrics
    brightness = float(box.mean())
    clipped = float((box >= 250).mean())
    mask = np.ones(luma.shape, dtype=bool)
    mask[y0:y1, x0:x1] = False
    background = float(luma[mask].mean()) if mask.any() else brightness
    metrics.update(brightness=round(brightness, 1), clipped=round(clipped, 3),
                   background=round(background, 1))
    if background - brightness > q.backlit_gap and brightness < q.backlit_face_max:
        issues.append("backlit")
    elif brightness < q.min_brightness:
        issues.append("too_dark")
    if brightness > q.max_brightness or clipped > q.max_clipped:
        issues.append("too_bright")

    gray = cv2.resize(box.astype(np.float32), (128, 128), interpolation=cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    metrics["sharpness"] = round(sharpness, 1)
    if sharpness < q.min_sharpness:
        issues.append("blurry")
    return ordered(issues), metrics
