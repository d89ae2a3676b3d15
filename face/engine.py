"""Detection, the quality gate and embeddings: DeepFace's Dlib model, offline.

One :class:`FaceEngine` per process (a worker, a CLI run) holds the loaded models. Its
work is CPU-bound and blocking: call it from a worker process or an executor, never on
the event loop.

Speed: DeepFace's own ``extract_faces`` pads the image to twice its size and upsamples it
for the HOG detector (16x the pixels). We detect once on the <= 1024 px image without
padding (upsampling only to look for a tiny face when none was found), then
align each face with dlib's own 5-point chip (how the Dlib ResNet was trained) and embed
it with DeepFace's Dlib client.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bot.core.images import MAX_SIDE, ImageRejected, decode
from face import pose as head_pose
from face import replay, weights
from face.detection import DetectedFace
from face.quality import QualityThresholds, assess, counts_as_face
from face.weights import FaceModelMissing as FaceModelMissing  # re-exported

log = logging.getLogger(__name__)
MODEL_NAME = "Dlib"
DETECTOR = "dlib"
DEFAULT_THRESHOLD = 0.08
Image = NDArray[np.uint8]


@dataclass
class Analysis:
    """What the engine found in one photo."""

    faces: int
    issues: list[str]
    embedding: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)  # (width, height) of the working image
    rotated: int = 0  # degrees we turned a photo whose face was sideways
    photo_hash: str | None = None
    seconds: float = 0.0
    image: Image | None = field(default=None, repr=False)  # the upright working image
    face: DetectedFace | None = field(default=None, repr=False)  # the surest face, judged

    @property
    def ok(self) -> bool:
        return not self.issues and self.embedding is not None


@dataclass
class Verdict:
    """Selfie against reference: passed only with no quality issue and distance <= threshold."""

    verified: bool
    distance: float | None
    threshold: float
    issues: list[str]
    analysis: Analysis


def cosine_distance(a: Any, b: Any) -> float:
    """1 - cosine similarity (DeepFace's "cosine" metric)."""
    va = np.asarray(a, dtype=np.float64)
    vb = np.asarray(b, dtype=np.float64)
    denominator = float(np.linalg.norm(va) * np.linalg.norm(vb))
    if denominator == 0:
        return 1.0
    return float(1.0 - np.dot(va, vb) / denominator)


def band(distance: float | None, accept_below: float, reject_above: float) -> str:
    """``accept`` at or below ``accept_below``, ``reject`` above ``reject_above``, else ``review``."""
    if distance is None or distance > reject_above:
        return "reject"
    return "accept" if distance <= accept_below else "review"


def dhash(image: Image, size: int = 8) -> str:
    """A 64-bit difference hash (hex) of the photo, to notice the same photo sent again."""
    import cv2  # deferred: OpenCV is heavy, loaded by face work only

    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (size + 1, size), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def prepare_home(home: Path | str | None = None) -> Path:
    """Point DeepFace at our weights (before it is imported) and check they are there."""
    resolved = weights.deepface_home(home)
    os.environ["DEEPFACE_HOME"] = str(resolved)
    missing = weights.missing(resolved)
    if missing:
        raise FaceModelMissing(
            f"face model weights missing in {weights.weights_dir(resolved)}: {', '.join(missing)}; "
            "run `python -m face.weights install` (make install does it)")
    return resolved


class FaceEngine:
    """Loaded models plus the calibrated quality gate."""

    def __init__(self, home: Path | str | None = None, *, threshold: float = DEFAULT_THRESHOLD,
                 quality: QualityThresholds | None = None, max_bytes: int = 10 * 1024 * 1024,
                 max_pixels: int = 40_000_000, accept_below: float | None = None,
                 reject_above: float | None = None) -> None:
        self.home = prepare_home(home)
        self.threshold = threshold
        # The grey zone: accept <= accept_below, reject > reject_above, review between.
        self.accept_below = threshold if accept_below is None else accept_below
        self.reject_above = threshold if reject_above is None else reject_above
        self.quality = quality or QualityThresholds()
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._lock = threading.Lock()  # dlib objects are not re-entrant
        from deepface.modules import modeling  # deferred: DeepFace loads its model

        detector = modeling.build_model(task="face_detector", model_name=DETECTOR)
        self._hog = detector.model["face_detector"]
        self._shape = detector.model["sp"]
        self._model = modeling.build_model(task="facial_recognition", model_name=MODEL_NAME)
        self.input_shape = tuple(self._model.input_shape)

    @classmethod
    def from_settings(cls, settings: Any) -> FaceEngine:
        face = settings.face
        if face.detector != DETECTOR:
            raise FaceModelMissing(f"face.detector must be '{DETECTOR}' (got {face.detector!r})")
        return cls(face.deepface_home, threshold=face.threshold, max_bytes=face.max_image_bytes,
                   max_pixels=face.max_image_pixels, accept_below=face.accept_below,
                   reject_above=face.reject_above)

    def band(self, distance: float | None) -> str:
        """``accept``, ``review`` (the grey zone around the threshold) or ``reject``."""
        return band(distance, self.accept_below, self.reject_above)

    # ------------------------------------------------------------ liveness (issue 21)

    def pose(self, analysis: Analysis) -> Any:
        """The head pose (:class:`face.pose.Pose`) of the judged face, or None."""
        face, image = analysis.face, analysis.image
        if face is None or image is None or analysis.faces != 1:
            return None
        predictor = head_pose.predictor(self.home)
        with self._lock:
            points = head_pose.landmarks68(predictor, image,
                                           (face.left, face.top, face.right, face.bottom))
        height, width = image.shape[:2]
        try:
            return head_pose.solve(points, (width, height))
        except ValueError:
            return None

    def replay_signals(self, analysis: Analysis) -> tuple[list[str], dict[str, Any]]:
        """Replay signals (:mod:`face.replay`) that fired, and their measurements."""
        face, image = analysis.face, analysis.image
        if face is None or image is None:
            return [], {}
        return replay.signals(image, (face.left, face.top, face.right, face.bottom))

    # ------------------------------------------------------------ detection

    def detect(self, image: Image, upsample: int = 0) -> list[DetectedFace]:
        """Every face the HOG detector finds, surest first, with 5-point landmarks."""
        import dlib  # deferred: dlib is heavy, loaded by face work only

        with self._lock:
            rects, scores, _ = self._hog.run(image, upsample, 0.0)
            faces = []
            for rect, score in zip(rects, scores, strict=True):
                shape = self._shape(image, dlib.rectangle(rect.left(), rect.top(), rect.right(),
                                                          rect.bottom()))
                points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)],
                                  dtype=np.float64)
                faces.append(DetectedFace(rect.left(), rect.top(), rect.right(), rect.bottom(),
                                          float(score), points, shape))
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces

    def find_faces(self, image: Image) -> tuple[Image, list[DetectedFace], int]:
        """Detect; if nothing is found, look for a small face, then for a sideways photo.

        Returns the (possibly turned) image, the faces and the turn in degrees.
        """
        faces = self.detect(image)
        if faces:
            return image, faces, 0
        if max(image.shape[:2]) <= MAX_SIDE:
            faces = self.detect(image, upsample=1)
            if faces:
                return image, faces, 0
        for turns in (1, 3, 2):  # photos whose orientation tag was lost on the way
            turned = np.ascontiguousarray(np.rot90(image, turns))
            faces = self.detect(turned)
            if faces:
                return turned, faces, turns * 90
        return image, [], 0

    # ------------------------------------------------------------ embedding

    def embed(self, image: Image, face: DetectedFace) -> list[float]:
        """The 128-d embedding of one face by DeepFace's Dlib model.

        The face is aligned the way the Dlib ResNet was trained: a 150 px chip cut along the
        5 landmarks with 25 % padding (``dlib.get_face_chip``). On ``../shared/faces`` this
        halves the genuine-pair distances compared with DeepFace's eye-line crop.
        """
        import dlib  # deferred: dlib is heavy, loaded by face work only

        if face.shape is None:
            raise ImageRejected("no_face", "no landmarks")
        with self._lock:
            chip = dlib.get_face_chip(image, face.shape, size=self.input_shape[0], padding=0.25)
            # DeepFace's client takes BGR (it flips to RGB itself).
            vector = self._model.forward(np.ascontiguousarray(chip[:, :, ::-1]))
        return [float(v) for v in vector]

    # ------------------------------------------------------------ the gate

    def analyse(self, data: bytes | Image, *, embed: bool = True, strict: bool = True) -> Analysis:
        """Decode, find faces, run the quality gate and (if usable) embed.

        ``strict=False`` embeds any single face even with quality issues (evaluation).
        """
        started = time.perf_counter()
        try:
            image = data if isinstance(data, np.ndarray) else decode(
                data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        except ImageRejected as refused:
            return Analysis(faces=0, issues=[refused.code], seconds=time.perf_counter() - started)
        image, faces, rotated = self.find_faces(image)
        height, width = image.shape[:2]
        issues, metrics = assess(image, faces, self.quality)
        result = Analysis(faces=len([f for f in faces if _counts(f, faces, self.quality)]),
                          issues=issues, metrics=metrics, size=(width, height), rotated=rotated,
                          photo_hash=dhash(image), image=image, face=faces[0] if faces else None)
        single = faces and "no_face" not in issues and "multiple_faces" not in issues
        if embed and single and (not issues or not strict):
            try:
                result.embedding = self.embed(image, faces[0])
            except ImageRejected as refused:
                result.issues.append(refused.code)
        result.seconds = time.perf_counter() - started
        return result

    def verify(self, reference: list[float], data: bytes | Image) -> Verdict:
        """The selfie against a stored reference embedding (computed once, at enrolment)."""
        analysis = self.analyse(data)
        if not analysis.ok or analysis.embedding is None:
            return Verdict(False, None, self.threshold, list(analysis.issues), analysis)
        distance = cosine_distance(reference, analysis.embedding)
        return Verdict(distance <= self.threshold, round(distance, 6), self.threshold, [], analysis)


def _counts(face: DetectedFace, faces: list[DetectedFace], q: QualityThresholds) -> bool:
    return face is faces[0] or counts_as_face(face, faces[0], q)
