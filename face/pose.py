"""Head pose in degrees from dlib's 68 landmarks and OpenCV's ``solvePnP``.

Conventions (stable, ``python -m bot face pose``):

- ``yaw`` > 0 when the person turns to their own left (the nose moves toward the image's
  right);
- ``pitch`` > 0 when the person looks up;
- ``roll`` > 0 when the head is turned counter-clockwise in the image.

The rotation found by ``solvePnP`` (camera: x right, y down, z forward; the face model in
the same axes when frontal) is split as ``R = Rz(-roll) @ Ry(-yaw) @ Rx(-pitch)``: turning
the picture by an angle about its centre adds exactly that angle to the roll, and a mirrored
picture (the predictor numbers points by their place in the image, the model is symmetric)
gives the opposite yaw and roll. ``mouth`` is the inner-lip opening over the mouth width.

The 68-point predictor ships in ``face-recognition-models``; it is read from
``$DEEPFACE_HOME/.deepface/weights/`` when installed there, else from that package (never
downloaded).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from face import weights
from face.weights import FaceModelMissing

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"

# A generic head (millimetre-like units), x toward the image's right, y down, z away from
# the camera; nose tip at the origin. Indices are dlib's 68-point numbering.
MODEL_POINTS: dict[int, tuple[float, float, float]] = {
    30: (0.0, 0.0, 0.0),          # nose tip
    8: (0.0, 330.0, 65.0),        # chin
    36: (-225.0, -170.0, 135.0),  # outer corner of the eye on the image's left
    45: (225.0, -170.0, 135.0),   # outer corner of the eye on the image's right
    39: (-75.0, -165.0, 120.0),   # inner eye corners
    42: (75.0, -165.0, 120.0),
    48: (-150.0, 150.0, 125.0),   # mouth corners
    54: (150.0, 150.0, 125.0),
    31: (-45.0, 45.0, 65.0),      # nostril wings
    35: (45.0, 45.0, 65.0),
    27: (0.0, -170.0, 95.0),      # top of the nose bridge
}
_INDEX = list(MODEL_POINTS)
_OBJECT = np.array([MODEL_POINTS[i] for i in _INDEX], dtype=np.float64)


@dataclass
class Pose:
    """The pose of one face (degrees) and how far the mouth is open (ratio)."""

    yaw: float
    pitch: float
    roll: float
    mouth: float
    points: NDArray[np.float64] | None = field(default=None, repr=False)  # the 68 landmarks

    def as_dict(self) -> dict[str, float]:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1),
                "roll": round(self.roll, 1), "mouth": round(self.mouth, 3)}


def predictor_path(home: Path | None = None) -> Path:
    """Where the 68-point predictor is: DEEPFACE_HOME's weights, else the shipped package."""
    installed = weights.weights_dir(home or weights.deepface_home()) / LANDMARKS_68
    if installed.is_file():
        return installed
    import face_recognition_models  # deferred: the weights package, loaded by face work only

    return Path(face_recognition_models.__file__).resolve().parent / "models" / LANDMARKS_68


_predictors: dict[Path, Any] = {}
_load_lock = threading.Lock()


def predictor(home: Path | None = None) -> Any:
    """The loaded 68-point shape predictor (once per process)."""
    import dlib  # deferred: dlib is heavy, loaded by face work only

    path = predictor_path(home)
    with _load_lock:
        if path not in _predictors:
            if not path.is_file():
                raise FaceModelMissing(f"{LANDMARKS_68} missing (looked in {path.parent}); "
                                       "reinstall face-recognition-models")
            _predictors[path] = dlib.shape_predictor(str(path))
    return _predictors[path]


def landmarks68(shape_predictor: Any, image: NDArray[np.uint8],
                box: tuple[int, int, int, int]) -> NDArray[np.float64]:
    """The 68 points (x, y) of the face in ``box`` (left, top, right, bottom)."""
    import dlib  # deferred: dlib is heavy, loaded by face work only

    shape = shape_predictor(image, dlib.rectangle(*box))
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)


def mouth_opening(points: NDArray[np.float64]) -> float:
    """Inner lips apart (3 gaps, 61-67, 62-66, 63-65) over the mouth width (60-64)."""
    width = float(np.linalg.norm(points[64] - points[60])) or 1.0
    gaps = [np.linalg.norm(points[a] - points[b]) for a, b in ((61, 67), (62, 66), (63, 65))]
    return float(np.mean(gaps)) / width


def solve(points: NDArray[np.float64], size: tuple[int, int]) -> Pose:
    """Pose from the 68 points of a face in an image of ``size`` (width, height)."""
    import cv2  # deferred: OpenCV is heavy, loaded by face work only

    width, height = size
    focal = float(max(width, height))
    camera = np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]],
                      dtype=np.float64)
    image_points = np.ascontiguousarray(points[_INDEX], dtype=np.float64)
    # Start from a frontal head at a distance that fits the eyes' spacing in pixels.
    eye_px = float(np.linalg.norm(points[45] - points[36])) or 1.0
    start_t = np.array([[0.0], [0.0], [focal * 450.0 / eye_px]], dtype=np.float64)
    centre = image_points.mean(axis=0)
    start_t[0, 0] = (centre[0] - camera[0, 2]) * start_t[2, 0] / focal
    start_t[1, 0] = (centre[1] - camera[1, 2]) * start_t[2, 0] / focal
    ok, rvec, _ = cv2.solvePnP(_OBJECT, image_points, camera, np.zeros(4),
                               rvec=np.zeros((3, 1)), tvec=start_t, useExtrinsicGuess=True,
                               flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise ValueError("solvePnP found no pose")
    rotation, _ = cv2.Rodrigues(rvec)
    # R = Rz(g) @ Ry(p) @ Rx(s)  ->  p = asin(-R20), s = atan2(R21, R22), g = atan2(R10, R00)
    about_y = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    about_x = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    about_z = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return Pose(yaw=-about_y, pitch=-about_x, roll=-about_z, mouth=mouth_opening(points),
                points=points)
