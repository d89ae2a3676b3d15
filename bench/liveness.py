"""Liveness figures (issue 21): pose error, genuine first-try challenge outcomes, extra time,
accept / review / reject rates of the grey zone.

    nice python -m bench.liveness [--faces ../shared/faces]

Small on purpose (about a minute of one core): every genuine photo of the per-person
folders, variants made in code (turned, mirrored, recompressed, posed with
``face.variants.posed``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FACES = Path(os.environ.get("FACES_DIR", ROOT.parent / "shared" / "faces"))
DEGREES = 30.0  # the posed variants: "turn half way" is about 45 degrees
PEOPLE = ("obama", "biden", "kit_harington", "rose_leslie", "alex_lacamoire", "lin_manuel_miranda")


def _photos(faces: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for person in PEOPLE:
        folder = faces / person
        if folder.is_dir():
            out[person] = sorted(f"{person}/{p.name}" for p in folder.iterdir()
                                 if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return out


def _summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "mean": round(statistics.fmean(values), 2),
            "p90": round(float(np.percentile(values, 90)), 2), "max": round(max(values), 2)}


def pose_error(engine: Any, images: dict[str, Any]) -> dict[str, Any]:
    from face import variants

    roll_err: list[float] = []
    yaw_mirror: list[float] = []
    roll_mirror: list[float] = []
    pitch_mirror: list[float] = []
    misses = 0

    def measure(image: Any) -> Any:
        analysis = engine.analyse(np.ascontiguousarray(image), embed=False)
        return engine.pose(analysis) if analysis.faces == 1 else None

    for image in images.values():
        base = measure(image)
        if base is None:
            misses += 1
            continue
        for angle in (-30, -20, -10, 10, 20, 30):
            turned = measure(variants.tilt(image, angle))
            if turned is None:
                misses += 1
                continue
            roll_err.append(abs(turned.roll - base.roll - angle))
        mirror = measure(image[:, ::-1])
        if mirror is None:
            misses += 1
            continue
        yaw_mirror.append(abs(base.yaw + mirror.yaw))
        roll_mirror.append(abs(base.roll + mirror.roll))
        pitch_mirror.append(abs(base.pitch - mirror.pitch))
    return {"roll_error_turned_deg": _summary(roll_err),
            "yaw_error_mirrored_deg": _summary(yaw_mirror),
            "roll_error_mirrored_deg": _summary(roll_mirror),
            "pitch_error_mirrored_deg": _summary(pitch_mirror), "no_face": misses}


def challenge_outcomes(engine: Any, settings: Any, photos: dict[str, list[str]],
                       images: dict[str, Any]) -> dict[str, Any]:
    """A genuine user's first try: frontal photo, then the pose made in code from it."""
    from face import liveness, variants
    from face.jobs import _measure

    bounds = (settings.face.accept_below, settings.face.reject_above)
    outcomes: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = {}
    frontal_s: list[float] = []
    plain_s: list[float] = []
    challenge_s: list[float] = []
    residuals: list[float] = []
    by_pose: dict[str, list[float]] = {}
    for names in photos.values():
        template = engine.analyse(images[names[0]]).embedding
        for name in names:
            data = variants.encode(images[name], quality=90)
            started = time.perf_counter()
            engine.verify(template, data)
            plain_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            verdict, evidence = _measure(engine, template, data, "frontal", None, bounds)
            frontal_s.append(time.perf_counter() - started)
            if verdict.issues or evidence.get("band") != "accept" or "shape" not in evidence:
                reasons["frontal_not_accepted"] = reasons.get("frontal_not_accepted", 0) + 1
                continue
            analysis = verdict.analysis
            points = engine.pose(analysis).points
            for pose in liveness.POSES:
                for label, quality in (("posed", 90), ("posed_q50", 50)):
                    first = liveness.First(embedding=list(analysis.embedding),
                                           pose=evidence["pose"], shape=evidence["shape"],
                                           photo_hash=analysis.photo_hash, challenge=pose)
                    shot = variants.encode(variants.posed(analysis.image, points, pose, DEGREES),
                                           quality=quality)
                    started = time.perf_counter()
                    second, found = _measure(engine, template, shot, "challenge", first, bounds)
                    challenge_s.append(time.perf_counter() - started)
                    if second.issues:
                        result = "fail"
                        why = "quality:" + ",".join(second.issues)
                    elif not found["checks"]["shown"]:
                        result, why = "fail", str(found["checks"]["reason"])
                    elif "reject" in (found["band"], found["band_pair"]):
                        result, why = "fail", "mismatch"
                    elif "review" in (found["band"], found["band_pair"]) or found["replay_signals"]:
                        result = "review"
                        why = "replay:" + ",".join(found["replay_signals"]) \
                            if found["replay_signals"] else "grey_zone"
                    else:
                        result, why = "pass", "shown"
                    key = f"{label}:{pose}"
                    outcomes.setdefault(key, {"pass": 0, "review": 0, "fail": 0})[result] += 1
                    reasons[why] = reasons.get(why, 0) + 1
                    if "checks" in found:
                        residuals.append(found["checks"]["shape_residual"])
                        by_pose.setdefault(pose, []).append(found["checks"]["shape_residual"])
    total = {k: sum(v[k] for v in outcomes.values()) for k in ("pass", "review", "fail")}
    n = sum(total.values()) or 1
    return {"outcomes": outcomes, "first_try": {k: round(v / n, 3) for k, v in total.items()},
            "tries": n, "reasons": reasons,
            "shape_residual_posed": _summary(residuals) if residuals else None,
            "shape_residual_min_by_pose": {k: round(min(v), 3) for k, v in by_pose.items()},
            "seconds": {"verify_only_median": round(statistics.median(plain_s), 3),
                        "frontal_with_pose_and_replay_median": round(statistics.median(frontal_s), 3),
                        "challenge_photo_median": round(statistics.median(challenge_s), 3)}}


def band_rates(engine: Any, settings: Any, faces: Path, images: dict[str, Any]) -> dict[str, Any]:
    """Accept / review / reject on pairs.csv and on variants of its second photos."""
    from face import variants
    from face.engine import band, cosine_distance
    from face.evaluate import read_pairs

    bounds = (settings.face.accept_below, settings.face.reject_above)
    pairs = read_pairs(faces / "pairs.csv")
    makers = {
        "original": lambda im: im,
        "jpeg_q40": lambda im: __import__("bot.core.images", fromlist=["decode"]).decode(
            variants.encode(im, quality=40)),
        "half_size": lambda im: np.ascontiguousarray(im[::2, ::2]),
        "tilted_10": lambda im: variants.tilt(im, 10),
        "darker": lambda im: variants.darken(im, 0.6),
    }
    out: dict[str, Any] = {}
    for label, make in makers.items():
        cache: dict[str, Any] = {}

        def embed(name: str, varied: bool, make: Any = make, cache: dict[str, Any] = cache) -> Any:
            key = f"{name}:{varied}"
            if key not in cache:
                image = make(images[name]) if varied else images[name]
                cache[key] = engine.analyse(np.ascontiguousarray(image), strict=False).embedding
            return cache[key]

        counts = {g: {"accept": 0, "review": 0, "reject": 0} for g in ("genuine", "impostor")}
        for pair in pairs:
            a, b = embed(pair.x, False), embed(pair.y, True)
            distance = cosine_distance(a, b) if a is not None and b is not None else None
            counts["genuine" if pair.same else "impostor"][band(distance, *bounds)] += 1
        out[label] = {g: {k: round(v / max(1, sum(c.values())), 3) for k, v in c.items()}
                      for g, c in counts.items()}
        out[label]["pairs"] = len(pairs)
    return out


def main(argv: list[str] | None = None) -> int:
    from bot.core.config import load_settings
    from bot.core.images import decode
    from face.engine import FaceEngine

    parser = argparse.ArgumentParser(prog="python -m bench.liveness")
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    args = parser.parse_args(argv)
    settings = load_settings(ROOT / "config.yml", env={}, overrides={})
    engine = FaceEngine.from_settings(settings)
    photos = _photos(args.faces)
    images = {name: decode((args.faces / name).read_bytes())
              for names in photos.values() for name in names}
    started = time.perf_counter()
    result = {"photos": len(images), "bounds": [settings.face.accept_below,
                                                settings.face.reject_above],
              "pose": pose_error(engine, images),
              "challenge": challenge_outcomes(engine, settings, photos, images),
              "bands": band_rates(engine, settings, args.faces, images)}
    result["cpu_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
