"""The dashboard at scale: 1 million attempts and 100 k cases in PostgreSQL.

    python -m bench dashboard            # or: python -m bench.dashboard [--keep]

Creates a scratch database on the local PostgreSQL (127.0.0.1:5432, trust auth), runs the
migrations, seeds it with ``generate_series`` (a year of activity ending today):

- 600 k certification flows by 400 k people (started; 550 k gave an ID number), 1 M selfie
  attempts (a ``selfie_sent`` and a verdict event each: 60% passed, 30% failed over the five
  causes, 10% manual review), approvals, 60 k satisfaction answers: ~3.9 M events, and
  their daily totals as the app keeps them (built here in SQL from the events);
- 1 M ``certification_attempts`` rows, 100 k pensioners;
- 100 k cases over 20 staff with 300 k case messages;
- 100 k reminder subscriptions and deliveries;

then serves the real app (aiohttp test server, same process) and times ``GET
/staff/dashboard`` and ``GET /api/staff/stats`` as a logged-in supervisor for the last 30
days, 90 days and the whole year (first request cold, then the median of 5). The scratch
database is dropped at the end unless ``--keep``. Goal: the page under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
PASSWORD = "bench-password-1"
PREFECTURES = "ARRAY['6301','6302','6322','6323','6325','6326','6327','6328','other']"
CHANNELS = "ARRAY['wechat','wechat','wechat','wechat','wechat','wechat','web','web','web','telegram']"
CAUSES = "ARRAY['quality','mismatch','no_model','reuse','challenge']"
# A moment in the past year, spread over days and seconds by a hash of n.
AT = "(now() - (((n * 37) % 365) || ' days')::interval - (((n * 7919) % 86400) || ' seconds')::interval)"

SEED = [
    ("staff", """INSERT INTO staff_users (username, password_hash, role, active, failed_logins, created_at)
       SELECT 'agent' || n, 'x', 'agent', true, 0, now() FROM generate_series(1::bigint, 20) n"""),
    ("pensioners", """INSERT INTO pensioners (id_number, name, status, certified_at, created_at)
       SELECT lpad(n::text, 18, '0'), '测试', 'active',
              now() - (((n * 13) % 400) || ' days')::interval, now()
       FROM generate_series(1::bigint, 100000) n"""),
    ("flows", f"""INSERT INTO certification_events (at, day, kind, channel, prefecture, subject, proxy)
       SELECT at, (at AT TIME ZONE 'Asia/Shanghai')::date, k.kind, ({CHANNELS})[1 + n % 10],
              CASE WHEN k.kind = 'started' THEN NULL ELSE ({PREFECTURES})[1 + n % 9] END,
              substr(md5((n % 400000)::text), 1, 16), n % 5 = 0
       FROM (SELECT n, {AT} AS at FROM generate_series(1::bigint, 600000) n) f
       CROSS JOIN (VALUES ('started'), ('id_given')) k(kind)
       WHERE k.kind = 'started' OR n % 12 <> 0"""),
    ("attempts (events)", f"""INSERT INTO certification_events (at, day, kind, cause, channel, prefecture, subject, proxy)
       SELECT at, (at AT TIME ZONE 'Asia/Shanghai')::date, k.kind,
              CASE WHEN k.kind = 'failed' THEN ({CAUSES})[1 + (a / 10) % 5] END,
              ({CHANNELS})[1 + f % 10], ({PREFECTURES})[1 + f % 9],
              substr(md5((f % 400000)::text), 1, 16), f % 5 = 0
       FROM (SELECT a, f, {AT.replace('n *', 'f *')} + ((a % 600) || ' seconds')::interval AS at
             FROM (SELECT a, 1 + (a * 7907) % 600000 AS f FROM generate_series(1::bigint, 1000000) a) s) x
       CROSS JOIN LATERAL (VALUES ('selfie_sent'),
           (CASE WHEN a % 10 < 6 THEN 'passed' WHEN a % 10 < 9 THEN 'failed' ELSE 'review' END),
           (CASE WHEN a % 10 < 6 OR a % 20 = 19 THEN 'approved' END)) k(kind)
       WHERE k.kind IS NOT NULL"""),
    ("daily totals", """INSERT INTO certification_firsts (subject, kind, cause, year)
       SELECT DISTINCT subject, kind, c, extract(year FROM day)::int FROM (
         SELECT subject, kind, '' AS c, day FROM certification_events WHERE kind <> 'satisfaction'
         UNION ALL SELECT subject, kind, cause, day FROM certification_events WHERE cause IS NOT NULL) x"""),
    ("daily totals (2)", """INSERT INTO certification_daily (day, kind, cause, channel, prefecture, people, events)
       SELECT day, kind, c, channel, p, count(*) FILTER (WHERE rn = 1), count(*) FROM (
         SELECT day, kind, c, channel, p, row_number() OVER (
           PARTITION BY subject, kind, c, extract(year FROM day) ORDER BY at) AS rn FROM (
             SELECT subject, kind, '' AS c, day, at, channel, coalesce(prefecture, '') AS p
             FROM certification_events WHERE kind <> 'satisfaction'
             UNION ALL SELECT subject, kind, cause, day, at, channel, coalesce(prefecture, '')
             FROM certification_events WHERE cause IS NOT NULL) e) r
       GROUP BY day, kind, c, channel, p"""),
    ("certification_attempts", f"""INSERT INTO certification_attempts
         (pensioner_id, channel, chat_user, proxy, quality_codes, distance, threshold, decision, created_at)
       SELECT 1 + n % 100000, ({CHANNELS})[1 + n % 10], 'bench' || (n % 400000), false, '[]',
              0.3 + (n % 50) / 100.0, 0.6,
              CASE WHEN n % 10 < 6 THEN 'passed' WHEN n % 10 < 9 THEN 'failed' ELSE 'review' END, {AT}
       FROM generate_series(1::bigint, 1000000) n"""),
    ("cases", f"""INSERT INTO cases (conversation_key, channel, user_id, reason, status, assigned_to,
         transcript, evidence, proxy, created_at, claimed_at, closed_at, decision, first_reply_at)
       SELECT 'web:bench' || n, ({CHANNELS})[1 + n % 10], 'bench' || n, 'user_request',
              CASE WHEN n % 10 < 9 THEN 'closed' ELSE 'waiting' END,
              CASE WHEN n % 10 < 9 THEN 1 + n % 20 END, '[]', '{{}}', '{{}}', at,
              CASE WHEN n % 10 < 9 THEN at + ((n % 1800) || ' seconds')::interval END,
              CASE WHEN n % 10 < 9 THEN at + ((600 + n % 7200) || ' seconds')::interval END,
              CASE WHEN n % 10 < 9 THEN 'resolved' END,
              CASE WHEN n % 10 < 9 THEN at + ((n % 1800) || ' seconds')::interval END
       FROM (SELECT n, {AT} AS at FROM generate_series(1::bigint, 100000) n) c"""),
    ("case_messages", """INSERT INTO case_messages (case_id, author, staff_id, text, created_at)
       SELECT c.id, m.author, CASE WHEN m.author = 'staff' THEN c.assigned_to END, '…',
              CASE WHEN m.author = 'staff' THEN c.claimed_at
                   ELSE c.created_at + (m.k || ' seconds')::interval END
       FROM cases c CROSS JOIN (VALUES ('user', 5), ('user', 40), ('staff', 0)) m(author, k)
       WHERE m.author = 'user' OR c.claimed_at IS NOT NULL"""),
    ("satisfaction", """INSERT INTO certification_events (at, day, kind, channel, subject, proxy, case_id, value)
       SELECT closed_at + interval '1 minute', ((closed_at + interval '1 minute') AT TIME ZONE 'Asia/Shanghai')::date,
              'satisfaction', channel, substr(md5(conversation_key), 1, 16), false, id, 1 + id % 3
       FROM cases WHERE closed_at IS NOT NULL AND id % 3 <> 0"""),
    ("satisfaction totals", """INSERT INTO certification_daily (day, kind, cause, channel, prefecture, people, events)
       SELECT day, 'satisfaction', (value::int)::text, channel, '', count(*), count(*)
       FROM certification_events WHERE kind = 'satisfaction' GROUP BY day, value, channel"""),
    ("reminder_subscriptions", """INSERT INTO reminder_subscriptions
         (conversation_key, channel, pensioner_id, role, active, created_at, updated_at)
       SELECT 'wechat:bench' || n, 'wechat', n, 'self', true, now(), now()
       FROM generate_series(1::bigint, 100000) n"""),
    ("reminder_deliveries", f"""INSERT INTO reminder_deliveries
         (subscription_id, due_date, kind, status, attempts, created_at, updated_at, sent_at)
       SELECT n, (at + interval '30 days')::date, 'first',
              CASE WHEN n % 10 = 0 THEN 'send_failed' ELSE 'sent' END, 1, at, at,
              CASE WHEN n % 10 = 0 THEN NULL ELSE at END
       FROM (SELECT n, {AT} AS at FROM generate_series(1::bigint, 100000) n) d"""),
]


async def seed(dsn_db: str) -> dict[str, float]:
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(**PG, database=dsn_db)
    try:
        for name, sql in SEED:
            started = time.perf_counter()
            await conn.execute(sql)
            timings[name] = round(time.perf_counter() - started, 1)
            print(f"seeded {name} in {timings[name]} s", flush=True)
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = round(time.perf_counter() - started, 1)
        counts = {}
        for table in ("certification_events", "certification_daily", "certification_firsts",
                      "certification_attempts", "cases", "case_messages", "reminder_deliveries"):
            counts[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
        print(json.dumps(counts), flush=True)
        timings["rows"] = counts  # type: ignore[assignment]
    finally:
        await conn.close()
    return timings


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(**PG, database="test")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def time_requests(database_url: str, runs: int) -> dict[str, Any]:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app
    from bot.core.config import load_settings
    from bot.staff.web import AUTH

    redis_db = int(os.environ.get("TEST_REDIS_DB", "12"))
    settings = load_settings(ROOT / "config.yml", env={}, overrides={
        "storage.database_url": database_url, "storage.redis_url": f"redis://127.0.0.1:6379/{redis_db}",
        "storage.data_dir": str(ROOT / "var" / "bench" / "dashboard")})
    app = create_app(settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        if "bench-boss" not in {u.username for u in await app[AUTH].users()}:  # --database: reused
            await app[AUTH].create_user("bench-boss", PASSWORD, "supervisor")
        login = await client.post("/staff/login", data={"username": "bench-boss", "password": PASSWORD},
                                  allow_redirects=False)
        assert login.status == 303, await login.text()
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        out: dict[str, Any] = {}
        for days in (30, 90, 365):
            query = {"from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}
            for name, path in (("page", "/staff/dashboard"), ("api", "/api/staff/stats")):
                times = []
                for _ in range(runs + 1):
                    started = time.perf_counter()
                    response = await client.get(path, params=query)
                    await response.read()
                    times.append(time.perf_counter() - started)
                    assert response.status == 200, response.status
                key = f"{name}_{days}d"
                out[key] = {"cold_s": round(times[0], 3), "median_s": round(statistics.median(times[1:]), 3),
                            "max_s": round(max(times[1:]), 3)}
                print(key, out[key], flush=True)
        return out
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--database", help="use this existing (seeded) scratch database")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    from bot.core.storage.db import migrate

    name = args.database or f"bench_dashboard_{uuid.uuid4().hex[:8]}"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    result: dict[str, Any] = {"database": name}
    if not args.database:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        if not args.database:
            migrate(url)
            started = time.perf_counter()
            result["seed"] = asyncio.run(seed(name))
            result["seed_total_s"] = round(time.perf_counter() - started, 1)
        result["timings"] = asyncio.run(time_requests(url, args.runs))
        result["load_average"] = os.getloadavg()
    finally:
        if not args.keep and not args.database:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return result


if __name__ == "__main__":
    main()
