"""``python -m bot face check|verify|eval``: the face checks from the command line (stable).

- ``face check IMAGE`` -> ``{"ok", "faces", "issues", "advice"}``
- ``face verify REFERENCE SELFIE`` -> ``{"verified", "distance", "threshold", "issues"}``
- ``face eval PAIRS.csv --images DIR`` -> progress on stderr, last line
  ``{"pairs", "tar", "far", "accuracy", "threshold", "failed", "review"}``: tar and far count
  only accepted pairs (<= ``face.accept_below``), ``review`` is the share in the grey zone
- ``face pose IMAGE`` -> ``{"faces", "yaw", "pitch", "roll"}`` in degrees (face/pose.py)

Each prints one JSON line on stdout and exits 0; a file that cannot be read or a missing
model exits 2 with a message on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.core.config import load_settings
from face.engine import FaceEngine, FaceModelMissing
from face.evaluate import evaluate, read_pairs
from face.quality import advice_for


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("face", help="check, verify and evaluate face photos")
    face_sub = parser.add_subparsers(dest="face_command", metavar="ACTION", required=True)
    check = face_sub.add_parser("check", help="quality gate for one photo")
    check.add_argument("image", type=Path)
    check.set_defaults(func=run_check)
    verify = face_sub.add_parser("verify", help="compare a selfie with a reference photo")
    verify.add_argument("reference", type=Path)
    verify.add_argument("selfie", type=Path)
    verify.set_defaults(func=run_verify)
    evaluate = face_sub.add_parser("eval", help="TAR/FAR on a pair list (file_x,file_y,Decision)")
    evaluate.add_argument("pairs", type=Path)
    evaluate.add_argument("--images", type=Path, required=True, help="folder the pair paths are in")
    evaluate.add_argument("--threshold", type=float, help="cosine threshold (default from config)")
    evaluate.set_defaults(func=run_eval)
    pose = face_sub.add_parser("pose", help="head pose (yaw, pitch, roll in degrees)")
    pose.add_argument("image", type=Path)
    pose.set_defaults(func=run_pose)


def _engine(args: argparse.Namespace) -> Any:
    return FaceEngine.from_settings(load_settings(args.config))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SystemExit(_fail(f"cannot read {path}: {exc.strerror}")) from exc


def _fail(message: str) -> int:
    print(f"face: {message}", file=sys.stderr)
    return 2


def _print(data: dict[str, Any]) -> int:
    print(json.dumps(data, ensure_ascii=False), flush=True)
    return 0


def _guard(func: Any) -> Any:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except FaceModelMissing as exc:
            return _fail(str(exc))

    return wrapper


@_guard
def run_check(args: argparse.Namespace) -> int:
    data = _read(args.image)
    analysis = _engine(args).analyse(data, embed=False)
    return _print({"ok": not analysis.issues, "faces": analysis.faces, "issues": analysis.issues,
                   "advice": advice_for(analysis.issues)})


@_guard
def run_verify(args: argparse.Namespace) -> int:
    reference_bytes, selfie = _read(args.reference), _read(args.selfie)
    engine = _engine(args)
    reference = engine.analyse(reference_bytes, strict=False)
    if reference.embedding is None:
        issues = [f"reference_{code}" for code in reference.issues] or ["reference_no_face"]
        return _print({"verified": False, "distance": None, "threshold": engine.threshold,
                       "issues": issues})
    verdict = engine.verify(reference.embedding, selfie)
    return _print({"verified": verdict.verified, "distance": verdict.distance,
                   "threshold": verdict.threshold, "issues": verdict.issues})


@_guard
def run_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # deferred: a progress bar for this command only


    if not args.pairs.is_file():
        return _fail(f"cannot read {args.pairs}")
    if not args.images.is_dir():
        return _fail(f"not a folder: {args.images}")
    pairs = read_pairs(args.pairs)
    images = {p.x for p in pairs} | {p.y for p in pairs}
    engine = _engine(args)
    with tqdm(total=len(images), desc="embedding", unit="img", file=sys.stderr) as bar:
        result = evaluate(engine, args.pairs, args.images, args.threshold,
                          progress=lambda _name: bar.update(1))
    return _print(result)


@_guard
def run_pose(args: argparse.Namespace) -> int:
    """Yaw > 0: turned to the person's own left; roll > 0: counter-clockwise in the image."""
    data = _read(args.image)
    engine = _engine(args)
    analysis = engine.analyse(data, embed=False)
    if analysis.faces != 1 or analysis.face is None:
        return _print({"faces": analysis.faces, "yaw": None, "pitch": None, "roll": None})
    pose = engine.pose(analysis)
    if pose is None:
        return _print({"faces": 1, "yaw": None, "pitch": None, "roll": None})
    if analysis.rotated:  # we turned a sideways photo by `rotated` degrees counter-clockwise
        pose.roll -= analysis.rotated
        pose.roll = (pose.roll + 180) % 360 - 180
    return _print({"faces": 1, "yaw": round(pose.yaw, 1), "pitch": round(pose.pitch, 1),
                   "roll": round(pose.roll, 1)})
