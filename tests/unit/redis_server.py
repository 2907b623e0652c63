"""A real `redis-server` on a free loopback port, for cache tests. Skips the test when the binary is
missing (CI installs Debian's `redis-server`; locally: `apt-get install redis-server`).

    server = RedisServer(tmp_path, password="s3cret").start()
    ...
    server.stop()

Persistence is off and every wait is bounded. `stop()` then `start()` again on the same port is
how tests make Redis go away and come back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def require_redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (CI installs it; locally: apt-get install redis-server)")
    return binary


class RedisServer:
    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        user: tuple[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """`user` adds an ACL user (name, password); `tls` (cert, key) serves TLS only."""
        self.binary = require_redis_server()
        self.directory = directory
        self.password = password
        self.user = user
        self.tls = tls
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [
            self.binary,
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        if self.tls:
            cert, key = self.tls
            cmd += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert)]
            cmd += ["--tls-key-file", str(key), "--tls-auth-clients", "no"]
        else:
            cmd += ["--port", str(self.port)]
        if self.password:
            cmd += ["--requirepass", self.password]
        if self.user:
            name, secret = self.user
            cmd += ["--user", name, "on", f">{secret}", "~*", "&*", "+@all"]
        return cmd

    def start(self, timeout: float = 10.0) -> RedisServer:
        self._process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}: {self.command()}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"redis-server did not listen on {self.port} within {timeout}s"
                    ) from None
                time.sleep(0.02)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def client(self) -> redis.Redis:
        """A plain (non-TLS) synchronous client for assertions; close it after use."""
        return redis.Redis(host=LOOPBACK, port=self.port, password=self.password, socket_timeout=5)
