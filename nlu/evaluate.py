"""``make nlu-eval``: train both backends on nlu.yml, evaluate both on the held-out test.yml.

Prints one line per backend (``embedded accuracy 0.93 macro-f1 0.92 parse-p50-ms 0.4``),
a confusion summary (the most frequent wrong pairs), and writes the report to
``docs/nlu-eval.md``. The Rasa backend is skipped with a message where ``.venv-rasa``
does not exist (no Python 3.10).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

from bot.core.understanding import ParseResult
from nlu import rasa_model, training_data
from nlu.embedded import EmbeddedNlu
from nlu.rasa_backend import RasaNlu

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "nlu-eval.md"
NO_INTENT = "(none)"


@dataclass
class Evaluation:
    backend: str
    gold: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    parse_ms: list[float] = field(default_factory=list)
    train_s: float = 0.0
    note: str = ""

    @property
    def accuracy(self) -> float:
        return float(accuracy_score(self.gold, self.predicted))

    @property
    def macro_f1(self) -> float:
        labels = sorted(set(self.gold))
        return float(f1_score(self.gold, self.predicted, labels=labels, average="macro", zero_division=0))

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.parse_ms)

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.parse_ms)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    def line(self) -> str:
        return (f"{self.backend} accuracy {self.accuracy:.2f} macro-f1 {self.macro_f1:.2f} "
                f"parse-p50-ms {self.p50_ms:.1f}")

    def confusions(self, limit: int = 12) -> list[tuple[str, str, int]]:
        pairs = Counter((g, p) for g, p in zip(self.gold, self.predicted, strict=True) if g != p)
        return [(g, p, n) for (g, p), n in pairs.most_common(limit)]

    def errors(self) -> list[tuple[str, str, str]]:
        return [(t, g, p) for t, g, p in zip(self.texts, self.gold, self.predicted, strict=True) if g != p]


async def evaluate(backend: str, parse: Callable[[str], Awaitable[ParseResult]],
                   test: training_data.TrainingData, train_s: float, note: str = "") -> Evaluation:
    """Parse every held-out example once (after a warm-up) and score the top intent."""
    result = Evaluation(backend=backend, train_s=train_s, note=note)
    await parse("你好")
    for example in test.examples:
        started = time.perf_counter()
        parsed = await parse(example.text)
        result.parse_ms.append((time.perf_counter() - started) * 1000)
        result.texts.append(example.text)
        result.gold.append(example.intent)
        result.predicted.append(parsed.top.name if parsed.top else NO_INTENT)
    return result


async def run_embedded(data: Path, test: training_data.TrainingData) -> Evaluation:
    nlu = EmbeddedNlu(data)
    started = time.perf_counter()
    nlu.load_tokenizer()
    loaded = time.perf_counter()
    nlu.train()
    trained = time.perf_counter()
    note = (f"fit {trained - loaded:.2f} s on {len(nlu.data.examples) if nlu.data else 0} examples, "
            f"plus {loaded - started:.2f} s one-time jieba dictionary load")
    return await evaluate("embedded", nlu.parse, test, trained - loaded, note)


async def run_rasa(data: Path, test: training_data.TrainingData) -> Evaluation | None:
    try:
        rasa_model.rasa_executable()
    except rasa_model.RasaUnavailable as exc:
        print(f"rasa skipped: {exc}")
        return None
    cached = rasa_model.model_path(data).exists()
    started = time.perf_counter()
    model = rasa_model.train(data)
    train_s = time.perf_counter() - started
    note = "model reused from cache" if cached else f"trained in {train_s:.0f} s"
    server = rasa_model.RasaServer(model)
    await server.start()
    nlu = RasaNlu(server.url, timeout_s=30.0)
    try:
        await nlu.start()
        return await evaluate("rasa", nlu.parse, test, train_s, note + "; parse is an HTTP call to a local server")
    finally:
        await nlu.close()
        server.stop()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def report(results: list[Evaluation], test_count: int, train_count: int) -> str:
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# NLU evaluation",
        "",
        f"Generated by `make nlu-eval` on {today}; machine: {machine()}.",
        f"Trained on `nlu/data/nlu.yml` ({train_count} examples), evaluated on the held-out",
        f"`nlu/data/test.yml` ({test_count} examples). Accuracy counts the top intent; a message",
        "the backend rejects (no intent, Rasa's nlu_fallback) counts as wrong.",
        "",
        "| backend | accuracy | macro-F1 | parse p50 ms | parse p95 ms | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.backend} | {r.accuracy:.3f} | {r.macro_f1:.3f} | {r.p50_ms:.2f} | "
                     f"{r.p95_ms:.2f} | {r.note} |")
    for r in results:
        lines += ["", f"## {r.backend}: most frequent confusions (gold -> predicted)", ""]
        confusions = r.confusions()
        lines += [f"- {g} -> {p}: {n}" for g, p, n in confusions] or ["- none"]
        lines += ["", f"<details><summary>{r.backend}: all {len(r.errors())} errors</summary>", ""]
        lines += [f"- {t} — gold {g}, predicted {p}" for t, g, p in r.errors()]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> list[Evaluation]:
    data = Path(args.data)
    test = training_data.load(args.test)
    train_count = len(training_data.load(data).examples)
    results = [await run_embedded(data, test)]
    if not args.skip_rasa:
        rasa = await run_rasa(data, test)
        if rasa is not None:
            results.append(rasa)
    for r in results:
        print(r.line())
    for r in results:
        summary = ", ".join(f"{g}->{p} x{n}" for g, p, n in r.confusions(6)) or "none"
        print(f"{r.backend} confusions: {summary}")
    if len(results) == 2:
        print(f"embedded is {results[1].p50_ms / results[0].p50_ms:.0f}x faster per parse (p50)")
    args.counts = (len(test.examples), train_count)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlu.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(training_data.DATA_DIR / "nlu.yml"))
    parser.add_argument("--test", default=str(training_data.DATA_DIR / "test.yml"))
    parser.add_argument("--report", default=str(REPORT), help="markdown report path ('' for none)")
    parser.add_argument("--skip-rasa", action="store_true")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(report(results, *args.counts), encoding="utf-8")
        print(f"report written to {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
