"""``make bench``: every benchmark in one run; results to var/bench/results.json.

Scenarios: chat load through /api/chat and signed /wechat (1 and 2 processes, 200 users
at ~1 message/s each), saturation against Rasa's REST channel side by side, NLU
evaluation, the face figures, the dashboard over 1 M attempts (``bench/dashboard.py``), and
the peak hour (selfies and chat together, ``bench.peak``: 60 s at 3 selfies a second with 100
chat users; ``python -m bench peak --help`` for more). Copy the printed figures into BENCHMARKS.md with the
date and machine. ``python -m bench chat rasa_rest`` runs only the sections named.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import chat

OUT = Path(__file__).resolve().parent.parent / "var" / "bench"


def optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


SECTIONS = ("chat", "rasa_rest", "face", "dashboard", "peak")


# the peak section in `make bench`: 60 s at 3 selfies a second with 100 chat users
PEAK_DEFAULT = ["--seconds", "60", "--selfies-per-s", "3", "--users", "100"]


def main(argv: list[str] | None = None) -> None:
    """Run the sections named on the command line (default: all of them).

    ``python -m bench peak --seconds 20 ...`` runs only the peak benchmark with those options."""
    wanted = (sys.argv[1:] if argv is None else argv) or list(SECTIONS)
    if wanted[0] == "peak" and any(arg.startswith("-") for arg in wanted[1:]):
        from bench import peak

        peak.main(wanted[1:])
        return
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.node(),
                               "cpu": platform.processor() or platform.machine()}
    if "chat" in wanted:
        # 200 users, each sending a message about every second: ~200 messages/s offered
        load = ["--users", "200", "--messages", "30", "--think", "1.0"]
        results["chat_web_1proc"] = chat.main(load + ["--processes", "1"])
        results["chat_web_2proc"] = chat.main(load + ["--processes", "2"])
        results["chat_wechat_1proc"] = chat.main(load + ["--processes", "1", "--channel", "wechat"])
        results["chat_wechat_2proc"] = chat.main(load + ["--processes", "2", "--channel", "wechat"])
    for name in ("rasa_rest", "face", "dashboard", "peak"):
        module = optional(f"bench.{name}") if name in wanted else None
        if module is not None:
            results[name] = module.main(PEAK_DEFAULT if name == "peak" else [])
    OUT.mkdir(parents=True, exist_ok=True)
    name = "results.json" if set(wanted) == set(SECTIONS) else f"results-{'-'.join(wanted)}.json"
    (OUT / name).write_text(json.dumps(results, ensure_ascii=False, indent=2))
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
