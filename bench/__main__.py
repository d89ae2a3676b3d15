"""``make bench``: every benchmark in one run; results to var/bench/results.json.

Scenarios: chat load through /api/chat and signed /wechat (1 and 2 processes, 200 users
at ~1 message/s each), saturation against Rasa's REST channel side by side, NLU
evaluation, and the face figures. Copy the printed figures into BENCHMARKS.md with the
date and machine.
"""

from __future__ import annotations

import importlib
import json
import platform
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


def main() -> None:
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.node(),
                               "cpu": platform.processor() or platform.machine()}
    # 200 users, each sending a message about every second: ~200 messages/s offered
    load = ["--users", "200", "--messages", "30", "--think", "1.0"]
    results["chat_web_1proc"] = chat.main(load + ["--processes", "1"])
    results["chat_web_2proc"] = chat.main(load + ["--processes", "2"])
    results["chat_wechat_1proc"] = chat.main(load + ["--processes", "1", "--channel", "wechat"])
    results["chat_wechat_2proc"] = chat.main(load + ["--processes", "2", "--channel", "wechat"])
    for name in ("bench.rasa_rest", "bench.face"):
        module = optional(name)
        if module is not None:
            results[name.split(".")[1]] = module.main([])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=2))
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
