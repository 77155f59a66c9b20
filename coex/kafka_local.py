"""`coex kafka start|stop|status`: drives deploy/kafka-local.sh, the no-Docker local broker."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from runtime.settings import Settings

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "kafka-local.sh"


def kafka_home(settings: Settings) -> Path:
    return (settings.data_dir / "kafka").resolve()


def script(settings: Settings, action: str, check: bool = True) -> int:
    env = dict(os.environ)
    env["COEX_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap.split(",")[0]
    env.setdefault("COEX_KAFKA_HOME", str(kafka_home(settings)))
    done = subprocess.run(["bash", str(SCRIPT), action], env=env, check=False)
    if check and done.returncode not in (0, 3):
        raise SystemExit(f"kafka {action} failed (exit {done.returncode})")
    return done.returncode


def run(settings: Settings, args: argparse.Namespace) -> int:
    return script(settings, args.action, check=False)
