"""Verification accuracy on a labelled pair list (``file_x,file_y,Decision``).

Every distinct image is embedded once (single face required, quality issues tolerated:
this measures the matcher, the gate is measured separately). A pair whose image has no
usable single face counts as not accepted. ``tar`` = accepted genuine / genuine pairs,
``far`` = accepted impostor / impostor pairs. With a grey zone (``accept_below`` <
``reject_above``) only pairs at or below ``accept_below`` are accepted, and ``review`` is the
share of all pairs between the two bounds (sent to a person).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from face.engine import FaceEngine, cosine_distance


@dataclass
class Pair:
    x: str
    y: str
    same: bool


def read_pairs(path: Path) -> list[Pair]:
    """Rows ``file_x,file_y,Decision`` (Decision Yes/No), header optional."""
    pairs = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.reader(handle):
            if len(row) < 3 or row[0].strip().lower() == "file_x":
                continue
            decision = row[2].strip().lower()
            if decision not in ("yes", "no", "1", "0", "true", "false"):
                continue
            pairs.append(Pair(row[0].strip(), row[1].strip(), decision in ("yes", "1", "true")))
    return pairs


def embed_all(engine: FaceEngine, names: list[str], images: Path,
              progress: Callable[[str], None] | None = None) -> dict[str, list[float] | None]:
    """Embedding per file name; None when there is no usable single face."""
    embeddings: dict[str, list[float] | None] = {}
    for name in names:
        try:
            data = (images / name).read_bytes()
        except OSError:
            embeddings[name] = None
        else:
            analysis = engine.analyse(data, strict=False)
            embeddings[name] = analysis.embedding
        if progress:
            progress(name)
    return embeddings


def pair_distances(pairs: list[Pair], embeddings: dict[str, list[float] | None]
                   ) -> list[tuple[Pair, float | None]]:
    out: list[tuple[Pair, float | None]] = []
    for pair in pairs:
        a, b = embeddings.get(pair.x), embeddings.get(pair.y)
        out.append((pair, None if a is None or b is None else cosine_distance(a, b)))
    return out


def score(distances: list[tuple[Pair, float | None]], threshold: float,
          accept_below: float | None = None,
          reject_above: float | None = None) -> dict[str, float | int]:
    """TAR, FAR and accuracy of what is accepted; ``review``: the share in the grey zone."""
    accept = threshold if accept_below is None else accept_below
    reject = accept if reject_above is None else max(reject_above, accept)
    genuine = [d for p, d in distances if p.same]
    impostor = [d for p, d in distances if not p.same]
    accepted_g = sum(1 for d in genuine if d is not None and d <= accept)
    accepted_i = sum(1 for d in impostor if d is not None and d <= accept)
    reviewed = sum(1 for _, d in distances if d is not None and accept < d <= reject)
    correct = accepted_g + (len(impostor) - accepted_i)
    total = len(genuine) + len(impostor)
    return {
        "pairs": total,
        "tar": round(accepted_g / len(genuine), 4) if genuine else 0.0,
        "far": round(accepted_i / len(impostor), 4) if impostor else 0.0,
        "accuracy": round(correct / total, 4) if total else 0.0,
        "threshold": threshold,
        "review": round(reviewed / total, 4) if total else 0.0,
    }


def evaluate(engine: FaceEngine, pairs_csv: Path, images: Path, threshold: float | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, float | int]:
    """The figures ``python -m bot face eval`` prints."""
    pairs = read_pairs(pairs_csv)
    names = sorted({p.x for p in pairs} | {p.y for p in pairs})
    embeddings = embed_all(engine, names, images, progress)
    if threshold is None:  # the configured grey zone
        result = score(pair_distances(pairs, embeddings), engine.threshold, engine.accept_below,
                       engine.reject_above)
    else:  # one explicit threshold: no grey zone
        result = score(pair_distances(pairs, embeddings), threshold)
    result["failed"] = sum(1 for name in names if embeddings[name] is None)
    return result
