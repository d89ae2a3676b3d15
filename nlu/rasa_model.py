"""Training and serving the Rasa NLU model from ``nlu/data/nlu.yml``.

Rasa 3.6.21 pins its own dependencies (Python 3.10, TensorFlow, SQLAlchemy 1.4), so it
lives in a separate virtual environment, ``.venv-rasa`` (``make rasa``). This module runs
in the project's own venv and drives Rasa through its command line:

- ``python -m nlu.rasa_model train``: generate a minimal domain listing the intents and
  entities, train with ``nlu/rasa/config.yml``; the model is cached as
  ``.venv-rasa/models/nlu-<hash>.tar.gz`` keyed by a hash of nlu.yml and the config,
  so unchanged data is never retrained.
- ``python -m nlu.rasa_model serve --port 5005``: ``rasa run --enable-api`` on 127.0.0.1.
- :class:`RasaServer`: start a server on a free port and wait until the model answers
  (used by the integration test and ``make nlu-eval``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

from nlu import training_data

ROOT = Path(__file__).resolve().parent.parent
RASA_VENV = Path(os.environ.get("RASA_VENV", ROOT / ".venv-rasa"))
CONFIG = Path(__file__).resolve().parent / "rasa" / "config.yml"
DATA = training_data.DATA_DIR / "nlu.yml"
ENTITY_TYPES = ("id_number", "phone", "relationship", "region", "date")


class RasaUnavailable(RuntimeError):
    """``.venv-rasa`` is missing (no Python 3.10 here, or ``make rasa`` not run)."""


def rasa_executable(venv: Path = RASA_VENV) -> Path:
    """The ``rasa`` command of the Rasa venv; raises RasaUnavailable if absent."""
    exe = venv / "bin" / "rasa"
    if not exe.exists():
        raise RasaUnavailable(f"{exe} not found: run `make rasa` (needs Python 3.10)")
    return exe


def fingerprint(data_path: Path = DATA, config_path: Path = CONFIG) -> str:
    """Short hash of the training data and the pipeline config."""
    digest = hashlib.sha256()
    for path in (data_path, config_path):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def model_path(data_path: Path = DATA, config_path: Path = CONFIG, venv: Path = RASA_VENV) -> Path:
    return venv / "models" / f"nlu-{fingerprint(data_path, config_path)}.tar.gz"


def domain_for(data: training_data.TrainingData) -> dict[str, object]:
    """A minimal Rasa domain: the intents and entities of the training data."""
    entity_types = sorted({t for e in data.examples for t, *_ in e.entities} | set(ENTITY_TYPES))
    return {"version": "3.1", "intents": data.intents, "entities": entity_types}


def train(data_path: Path = DATA, config_path: Path = CONFIG, venv: Path = RASA_VENV,
          quiet: bool = True) -> Path:
    """Train (or reuse) the model for this data and config; returns the model file."""
    exe = rasa_executable(venv)
    target = model_path(data_path, config_path, venv)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rasa-train-") as tmp:
        domain = Path(tmp) / "domain.yml"
        domain.write_text(yaml.safe_dump(domain_for(training_data.load(data_path)), allow_unicode=True),
                          encoding="utf-8")
        command = [str(exe), "train", "nlu", "--nlu", str(data_path), "--config", str(config_path),
                   "--domain", str(domain), "--out", tmp, "--fixed-model-name", "model"]
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=tmp, env=_env(), capture_output=quiet, text=True,
                                   check=False)
        if completed.returncode != 0:
            tail = (completed.stderr or completed.stdout or "")[-2000:] if quiet else ""
            raise RuntimeError(f"rasa train failed (exit {completed.returncode}): {tail}")
        shutil.move(str(Path(tmp) / "model.tar.gz"), target)
    for stale in target.parent.glob("nlu-*.tar.gz"):  # models of older data, ~35 MB each
        if stale != target:
            stale.unlink(missing_ok=True)
    print(f"trained {target.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return target


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    env.pop("PYTHONPATH", None)
    return env


def serve_command(model: Path, port: int, host: str = "127.0.0.1", venv: Path = RASA_VENV) -> list[str]:
    return [str(rasa_executable(venv)), "run", "--enable-api", "--model", str(model),
            "--interface", host, "--port", str(port)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RasaServer:
    """A ``rasa run --enable-api`` subprocess on a free local port."""

    def __init__(self, model: Path, port: int | None = None, venv: Path = RASA_VENV,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.model = model
        self.extra_args = extra_args
        self.port = port or free_port()
        self.venv = venv
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process (output to a temporary log file), without waiting."""
        handle, name = tempfile.mkstemp(prefix="rasa-server-", suffix=".log")
        self.log_file = Path(name)
        with os.fdopen(handle, "wb") as log:
            self.process = subprocess.Popen(
                [*serve_command(self.model, self.port, venv=self.venv), *self.extra_args], env=_env(),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self.process

    async def start(self, timeout_s: float = 240.0) -> None:
        """Start the server and wait until ``/model/parse`` answers (30-60 s to load)."""
        self.process = await asyncio.to_thread(self.launch)
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"rasa exited with {self.process.returncode}: {self.log_tail()}")
                try:
                    async with session.post(f"{self.url}/model/parse", json={"text": "你好"},
                                            timeout=aiohttp.ClientTimeout(total=5)) as response:
                        if response.status == 200 and (await response.json()).get("intent"):
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(1.0)
        self.stop()
        raise TimeoutError(f"rasa did not answer within {timeout_s:.0f} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        if self.log_file is None or not self.log_file.exists():
            return ""
        return self.log_file.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self) -> None:
        """Terminate the server process (and only it), then remove its log."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self.log_file is not None:
            self.log_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlu.rasa_model", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="train (or reuse) the model from nlu/data/nlu.yml")
    sub.add_parser("model-path", help="print the cached model file for the current data")
    serve = sub.add_parser("serve", help="serve the model with `rasa run --enable-api`")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5005)
    args = parser.parse_args(argv)
    try:
        if args.command == "model-path":
            print(model_path())
            return 0
        model = train()
        if args.command == "train":
            print(model)
            return 0
        os.execve(serve_command(model, args.port, args.host)[0], serve_command(model, args.port, args.host),
                  _env())
    except RasaUnavailable as exc:
        print(f"skipping Rasa: {exc}", file=sys.stderr)
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
