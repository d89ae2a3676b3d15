"""Saturation throughput: our /api/chat against Rasa's own REST channel, side by side.

Rasa serves a bot trained on the same ``nlu/data/nlu.yml`` with the same Chinese
pipeline (``nlu/rasa/config.yml``) plus a RulePolicy that answers every intent with a
response (the first message of its FAQ entry), so its REST channel
(``/webhooks/rest/webhook``) does a full turn: parse, policy, response. Both servers get
the same messages from the same number of concurrent users with no think time.

Each server is warmed first, unmeasured: as many other users send ``--warmup`` messages each
(5 by default; ``--warmup 0`` measures cold servers, as runs before 2026-12-05 did). A cold
run of 1000 messages lasts about 2 s on our side, so the server's first statements, new
pooled connections and caches weighed on it; Rasa's first requests are slow too.

    python -m bench.rasa_rest [--users 50] [--messages 20] [--warmup 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import chat
from faq.knowledge import KnowledgeBase
from nlu import rasa_model, training_data

ROOT = Path(__file__).resolve().parent.parent


def train_bot() -> Path:
    """Train (or reuse) a full Rasa model: NLU + rules answering each intent."""
    exe = rasa_model.rasa_executable()
    data = training_data.load()
    kb = KnowledgeBase()
    responses = {}
    rules = []
    for intent in data.intents:
        entry = kb.for_intent(intent)
        text = str(entry.answer[0]) if entry else "好的。"  # a plain str for YAML (not i18n.Text)
        responses[f"utter_{intent}"] = [{"text": text}]
        rules.append({"rule": f"answer {intent}",
                      "steps": [{"intent": intent}, {"action": f"utter_{intent}"}]})
    config = yaml.safe_load(rasa_model.CONFIG.read_text(encoding="utf-8"))
    config["policies"] = [{"name": "RulePolicy", "core_fallback_threshold": 0.3,
                           "enable_fallback_prediction": False}]
    domain = rasa_model.domain_for(data)
    domain["responses"] = responses
    digest = hashlib.sha256(json.dumps([config, domain, rules], ensure_ascii=False).encode()
                            + rasa_model.DATA.read_bytes()).hexdigest()[:16]
    target = rasa_model.RASA_VENV / "models" / f"bot-{digest}.tar.gz"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rasa-bot-") as tmp:
        project = Path(tmp)
        (project / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        (project / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True), encoding="utf-8")
        (project / "data").mkdir()
        shutil.copy(rasa_model.DATA, project / "data" / "nlu.yml")
        (project / "data" / "rules.yml").write_text(
            yaml.safe_dump({"version": "3.1", "rules": rules}, allow_unicode=True), encoding="utf-8")
        started = time.perf_counter()
        subprocess.run([str(exe), "train", "--fixed-model-name", "bot", "--out", str(project / "models")],
                       cwd=project, env=rasa_model._env(), check=True, capture_output=True)
        shutil.move(str(project / "models" / "bot.tar.gz"), target)
        print(f"trained the Rasa bot in {time.perf_counter() - started:.0f} s", flush=True)
    return target


async def send_rasa(session: aiohttp.ClientSession, port: int, user: str, step: int, text: str) -> str | None:
    """The bot's answer texts, None for an error or no answer."""
    async with session.post(f"http://127.0.0.1:{port}/webhooks/rest/webhook",
                            json={"sender": user, "message": text}) as response:
        body = await response.json()
        if response.status != 200 or not isinstance(body, list) or not body:
            return None
        return "\n".join(str(item.get("text", "")) for item in body)


async def rasa_load(model: Path, users: int, messages: int, warmup: int = 0) -> dict[str, Any]:
    credentials = Path(tempfile.mkdtemp()) / "credentials.yml"
    credentials.write_text("rest:\n", encoding="utf-8")
    server = rasa_model.RasaServer(model, extra_args=("--credentials", str(credentials)))
    try:
        await server.start()
        return await chat.run_load([server.port], users, messages, 0.0, send_rasa, wait_for_health=False,
                                   warmup=warmup)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5,
                        help="unmeasured messages per user first, on both servers (0: cold)")
    args = parser.parse_args(argv)
    try:
        model = train_bot()
    except rasa_model.RasaUnavailable as missing:
        print(f"skipping the Rasa comparison: {missing}", flush=True)
        return {"skipped": str(missing)}
    ours = chat.main(["--users", str(args.users), "--messages", str(args.messages), "--saturate",
                      "--warmup", str(args.warmup)])
    rasa = asyncio.run(rasa_load(model, args.users, args.messages, args.warmup))
    result = {"ours": ours, "rasa_rest": rasa,
              "ratio": round(ours["msgs_per_s"] / max(rasa["msgs_per_s"], 0.001), 1)}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
