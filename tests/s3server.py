"""moto's standalone S3 server as a child process, spoken to over HTTP like AWS.

Its own process (not moto's in-process mocks or ThreadedMotoServer), so the
actorbase server under test reaches it exactly as it would reach S3.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import requests

from tests.serverproc import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server:
    """`python -m moto.server` on a free port; `bucket()` makes a fresh bucket."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> S3Server:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited {self.proc.returncode}")
            with contextlib.suppress(requests.ConnectionError):
                requests.get(self.endpoint + "/moto-api/", timeout=2)
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def bucket(self) -> str:
        name = "ab-test-" + secrets.token_hex(6)
        self.client().create_bucket(Bucket=name)
        return name

    def server_env(self, bucket: str, prefix: str = "files") -> dict[str, str]:
        """What an actorbase server needs to store its files in `bucket`."""
        return {
            "STORAGE_URL": f"s3://{bucket}/{prefix}",
            "S3_ENDPOINT_URL": self.endpoint,
            **CREDENTIALS,
        }
