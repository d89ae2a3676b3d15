"""Chat load on loopback: a bounded load generator against real server processes.

    python -m bench.chat [--users 200] [--messages 30] [--think 1.0] [--processes 1|2]
                         [--saturate] [--channel web|wechat]

Starts ``python -m bot serve --no-worker`` processes sharing one Redis (the local server
when it answers, else an embedded one) and one database (a fresh one on the local
PostgreSQL when it answers, else a SQLite file), spreads simulated users over them, and prints p50/p99 latency, messages per second, errors and server RSS as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.services import RedisProcess, create_postgres_database, free_port, serve
from tests.services import wait_healthy as server_healthy

ROOT = Path(__file__).resolve().parent.parent
SHORT_REPLIES = ["1", "2", "3", "主菜单", "返回", "4"]
QUEUED_MARK = "不想等了请回复"  # the bot says this while a user waits for a person


def free_texts() -> list[str]:
    """Sentences users type: the held-out NLU test set (never trained on, all distinct)."""
    sys.path.insert(0, str(ROOT))
    from nlu import training_data

    return [example.text for example in training_data.load(training_data.DATA_DIR / "test.yml").examples]


def message_for(rng: random.Random, step: int, texts: list[str]) -> str:
    """Every third message is a menu number or command, the rest typed sentences."""
    if step % 3 == 2:
        return rng.choice(SHORT_REPLIES)
    return rng.choice(texts)


def redis_url() -> tuple[str, Any]:
    """The local Redis (db 12) when it answers, else an embedded redis-server."""
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5).ping()
        client = redis.Redis(host="127.0.0.1", port=6379, db=12)
        client.flushdb()
        return "redis://127.0.0.1:6379/12", None
    except (redis.exceptions.ConnectionError, OSError):
        process = RedisProcess().start()
        return process.url, process


def database_url() -> str | None:
    """A fresh database on the local PostgreSQL (as in production), else None for SQLite."""
    return create_postgres_database()


def start_servers(count: int, env_extra: dict[str, str]) -> tuple[list[int], list[subprocess.Popen[bytes]]]:
    ports = [free_port() for _ in range(count)]
    return ports, [serve(port, env_extra) for port in ports]


async def wait_healthy(session: aiohttp.ClientSession, ports: list[int]) -> None:
    for port in ports:
        await server_healthy(session, port)


async def run_load(ports: list[int], users: int, messages: int, think: float,
                   sender: Any, wait_for_health: bool = True,
                   on_ready: Any = None, warmup: int = 0) -> dict[str, Any]:
    """``users`` users send ``messages`` each; the figures cover those only.

    ``warmup`` > 0: first, as many other users send that many messages each, unmeasured
    (the server's first statements, pooled connections and caches are made then)."""
    latencies: list[float] = []
    sent_at: list[float] = []
    first_sends: list[float] = []  # each user's first and last send, for the steady window
    last_sends: list[float] = []
    errors = 0
    texts = free_texts()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if wait_for_health:
            await wait_healthy(session, ports)

        async def one_user(index: int, messages: int = messages, name: str = "bench",
                           measured: bool = True) -> None:
            nonlocal errors
            port = ports[index % len(ports)]
            rng = random.Random(index)
            if think:
                await asyncio.sleep(rng.uniform(0, think))
            queued = 0  # messages sent while waiting for a person
            for step in range(messages):
                text = message_for(rng, step, texts)
                if queued:  # like a real user: ask once, maybe, then give up waiting
                    text = "还要等多久" if queued == 1 and rng.random() < 0.5 else "算了"
                started = time.perf_counter()
                try:
                    answer = await sender(session, port, f"{name}{index}", step, text)
                except (TimeoutError, aiohttp.ClientError):
                    answer = None
                if measured:
                    sent_at.append(started)
                    if step == 0:
                        first_sends.append(started)
                    if step == messages - 1:
                        last_sends.append(started)
                    latencies.append(time.perf_counter() - started)
                    errors += 0 if answer is not None else 1
                queued = queued + 1 if answer and QUEUED_MARK in answer and text != "算了" else 0
                if think and step < messages - 1:
                    await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))

        if warmup:
            await asyncio.gather(*(one_user(i, warmup, "warmup", measured=False) for i in range(users)))
        cpu_before = on_ready() if on_ready else None
        started, client_cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one_user(i) for i in range(users)))
        elapsed, client_cpu = time.perf_counter() - started, time.process_time() - client_cpu
    latencies.sort()
    # While every user is active (after the last one started, before the first one finished),
    # the offered rate is what the scenario intends; the whole-run average includes ramps.
    window = (max(first_sends), min(last_sends)) if first_sends and last_sends else (0.0, 0.0)
    in_window = sum(window[0] <= t <= window[1] for t in sent_at)
    steady = in_window / (window[1] - window[0]) if window[1] - window[0] > 1 else None
    return {
        **({"cpu_before": cpu_before} if on_ready else {}),
        "messages": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "msgs_per_s": round(len(latencies) / elapsed, 1),
        "steady_msgs_per_s": round(steady, 1) if steady else None,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "load_generator_cpu_ms_per_msg": round(client_cpu * 1000 / max(len(latencies), 1), 2),
    }


# per load run (client session): bench user -> the chat id the server issued (valid on every process)
_web_ids: weakref.WeakKeyDictionary[aiohttp.ClientSession, dict[str, str]] = weakref.WeakKeyDictionary()


async def send_web(session: aiohttp.ClientSession, port: int, user: str, step: int, text: str) -> str | None:
    """The answer's text, or None for an error. A user's first call gets a chat id first."""
    ids = _web_ids.setdefault(session, {})
    if user not in ids:
        async with session.post(f"http://127.0.0.1:{port}/api/chat/session") as response:
            if response.status != 200:
                return None
            ids[user] = (await response.json())["user_id"]
    async with session.post(f"http://127.0.0.1:{port}/api/chat",
                            json={"user_id": ids[user], "text": text}) as response:
        body = await response.text()
        return body if response.status == 200 else None


def senders() -> dict[str, Any]:
    available: dict[str, Any] = {"web": send_web}
    try:
        from bench.wechat_load import send_wechat

        available["wechat"] = send_wechat
    except ImportError:
        pass
    return available


def use_uvloop() -> None:
    """The load generator shares the 2 cores: give it the faster loop too."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--think", type=float, default=1.0, help="seconds between a user's messages")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--saturate", action="store_true", help="no think time")
    parser.add_argument("--channel", default="web", choices=sorted(senders()))
    parser.add_argument("--warmup", type=int, default=0,
                        help="first, unmeasured: as many other users send this many messages each")
    args = parser.parse_args(argv)
    use_uvloop()
    url, embedded = redis_url()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    postgres = database_url()
    env = {"REDIS_URL": url, "BOT_DATA_DIR": str(data_dir),
           "DATABASE_URL": postgres or f"sqlite+aiosqlite:///{data_dir / 'bench.sqlite3'}",
           "WECHAT_TOKEN": "benchtoken", "WECHAT_APP_ID": "wxbench", "WECHAT_APP_SECRET": "x",
           "WECHAT_API_BASE": "http://127.0.0.1:9/",
           # production logging: one JSON line per message (to /dev/null here)
           "LOG_LEVEL": "INFO"}
    # Per-chat limits: the bench users stay below them. Per-address limits: all 200 users come
    # from loopback, which a real deployment never sees at once, so loopback is exempt here
    # (web_chat.address_limits_exempt; docs/security.md).
    env["WEB_ADDRESS_LIMITS_EXEMPT"] = "127.0.0.0/8,::1/128"
    ports, processes = start_servers(args.processes, env)
    try:
        think = 0.0 if args.saturate else args.think
        servers = [psutil.Process(p.pid) for p in processes]
        result = asyncio.run(run_load(ports, args.users, args.messages, think, senders()[args.channel],
                                      on_ready=lambda: [s.cpu_times() for s in servers],
                                      warmup=args.warmup))
        before = result.pop("cpu_before")
        spent = sum(s.cpu_times().user + s.cpu_times().system - b.user - b.system
                    for s, b in zip(servers, before, strict=True))
        result["server_cpu_ms_per_msg"] = round(spent * 1000 / max(result["messages"], 1), 2)
        result["rss_mb"] = [round(psutil.Process(p.pid).memory_info().rss / 2**20, 1) for p in processes]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        if embedded is not None:
            embedded.stop()
        if postgres:
            from tests.services import drop_postgres_database

            drop_postgres_database(postgres)
    result["database"] = "postgresql" if postgres else "sqlite"
    result.update({"users": args.users, "per_user": args.messages, "think_s": 0.0 if args.saturate else args.think,
                   "processes": args.processes, "channel": args.channel, "warmup_per_user": args.warmup})
    if not args.saturate:  # each user sends about once per think time
        result["offered_per_s"] = round(args.users / args.think, 1)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
