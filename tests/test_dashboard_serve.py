"""Serving the dashboard: the ``[web]`` config, ``channelsync web`` (alone, as a process),
``web hash-password``, and ``channelsync run`` serving it beside metrics on one listener."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from channelsync.cli import app as cli
from channelsync.config import load_config, parse_config
from channelsync.errors import ConfigError
from channelsync.service.daemon import Daemon
from tests.dashboard_helpers import (
    ADMIN,
    ADMIN_HASH,
    ADMIN_PASSWORD,
    CHANNELS,
    SESSION_SECRET,
    USERS,
    csrf_of,
)

CLI = [sys.executable, "-m", "channelsync"]
EXAMPLE = Path(__file__).resolve().parent.parent / "channels.example.toml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def web_problems(web: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(f"[web]\n{web}\n", env={})
    return info.value.problems


def write_config(tmp_path: Path, web: str, users: bool = True) -> Path:
    path = tmp_path / "channels.toml"
    path.write_text(f"""
[database]
url = "sqlite:///{tmp_path}/ledger.db"
[web]
{web}
{USERS if users else ""}
{CHANNELS}
""")
    return path


# -- config -------------------------------------------------------------------------------


def test_the_web_section_is_read_and_its_secrets_kept_secret() -> None:
    config = parse_config(f'[web]\nlisten = "0.0.0.0:8080"\nsession_secret = '
                          f'"{SESSION_SECRET}"\nsecure_cookies = true\n{USERS}', env={})
    web = config.web
    assert (web.listen, web.secure_cookies, web.session_hours) == ("0.0.0.0:8080", True, 12)
    assert [(u.name, u.role) for u in web.users] == [("alice", "admin"), ("packer", "viewer")]
    assert web.user("alice") is not None and web.user("nobody") is None
    for text in (repr(config), str(config), repr(web), str(web.users)):
        assert SESSION_SECRET not in text and ADMIN_HASH not in text
    assert parse_config("", env={}).web.listen == ""  # off unless configured


def test_the_example_documents_the_web_section_and_keeps_it_off() -> None:
    config = load_config(EXAMPLE, env={"WOO_CONSUMER_KEY": "k", "WOO_CONSUMER_SECRET": "s"})
    assert config.web.listen == "" and config.web.users == []
    text = EXAMPLE.read_text()
    for key in ("session_secret", "secure_cookies", "session_hours", "[[web.users]]",
                "password_hash", "role", "hash-password"):
        assert key in text, key


def test_a_hash_and_a_secret_may_come_from_the_environment_or_a_credential(
    tmp_path: Path
) -> None:
    (tmp_path / "ALICE_HASH").write_text(ADMIN_HASH + "\n")
    config = parse_config(
        '[web]\nsession_secret = "${SESSION}"\n[[web.users]]\nname = "alice"\n'
        'password_hash = "${ALICE_HASH}"\n',
        env={"SESSION": SESSION_SECRET, "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.web.users[0].password_hash.get_secret_value() == ADMIN_HASH
    assert config.web.session_secret.get_secret_value() == SESSION_SECRET


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.0.2.10:8080", "[::]:8080",
                                    "shop.example:8080"])
def test_an_address_other_than_loopback_needs_a_user(listen: str) -> None:
    (problem,) = web_problems(f'listen = "{listen}"')
    assert problem.startswith(f"web.listen: {listen} is not a loopback address")
    assert "[[web.users]]" in problem


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "[::1]:8080", "localhost:0",
                                    "127.0.0.2:9"])
def test_loopback_needs_no_user(listen: str) -> None:
    assert parse_config(f'[web]\nlisten = "{listen}"\n', env={}).web.listen == listen


def test_web_problems_are_each_named_with_their_place() -> None:
    problems = web_problems("""listen = "nowhere"
session_secret = "short"
secure_cookies = "sometimes"
colour = "blue"
[[web.users]]
name = "bob"
password_hash = "plain-text-password"
role = "owner"
[[web.users]]
name = "bob"
password_hash = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA"
""")
    joined = "\n".join(problems)
    for expected in ("web.secure_cookies", "web.colour: unknown key", "web.users.0.role"):
        assert expected in joined, (expected, problems)
    problems = web_problems("""listen = "nowhere"
session_secret = "short"
[[web.users]]
name = "bob"
password_hash = "plain-text-password"
[[web.users]]
name = "bob"
password_hash = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA"
""")
    joined = "\n".join(problems)
    for expected in ("web.listen: 'nowhere' is not host:port",
                     "web.users: the name 'bob' is used more than once",
                     "web.users[0] (bob).password_hash: not an argon2 hash",
                     "web.session_secret: shorter than 32 characters"):
        assert expected in joined, (expected, problems)
    assert "plain-text-password" not in joined and "short" not in joined.replace(
        "shorter", "")


# -- channelsync web ------------------------------------------------------------------------


def test_channelsync_web_refuses_an_address_other_than_loopback_without_users(
    tmp_path: Path
) -> None:
    config = write_config(tmp_path, 'listen = "127.0.0.1:0"', users=False)
    result = CliRunner().invoke(cli, ["--config", str(config), "web", "--listen",
                                      "0.0.0.0:8080"])
    assert result.exit_code == 2
    assert "--listen: 0.0.0.0:8080 is not a loopback address" in " ".join(result.stderr.split())
    empty = write_config(tmp_path, "", users=False)
    result = CliRunner().invoke(cli, ["--config", str(empty), "web"])
    assert result.exit_code == 2 and "no address to serve on" in result.stderr
    refused = write_config(tmp_path, 'listen = "0.0.0.0:8080"', users=False)
    result = CliRunner().invoke(cli, ["--config", str(refused), "web"])
    assert result.exit_code == 2 and "web.listen" in result.stderr


def test_config_check_names_the_dashboard_and_its_users(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'listen = "127.0.0.1:8080"')
    result = CliRunner().invoke(cli, ["config", "check", str(config)])
    assert result.exit_code == 0, result.stderr
    assert "dashboard on 127.0.0.1:8080: alice (admin), packer (viewer)" in result.stdout
    assert ADMIN_HASH not in result.stdout + result.stderr
    as_json = CliRunner().invoke(cli, ["config", "check", str(config), "--json"])
    assert '"role": "viewer"' in as_json.stdout and ADMIN_HASH not in as_json.stdout


def test_hash_password_prints_a_hash_that_verifies() -> None:
    result = CliRunner().invoke(cli, ["web", "hash-password"], input="a-long-password\n")
    assert result.exit_code == 0, result.stderr
    hashed = result.stdout.strip()
    assert hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, "a-long-password")
    assert "a-long-password" not in result.stdout + result.stderr
    short = CliRunner().invoke(cli, ["web", "hash-password"], input="short\n")
    assert short.exit_code == 2 and "at least 8 characters" in short.stderr


def test_channelsync_web_serves_the_dashboard_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, f'listen = "127.0.0.1:{port}"')
    proc = subprocess.Popen([*CLI, "--config", str(config), "web"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.search(rf"dashboard on http://127\.0\.0\.1:{port} \(2 user", line), line
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/").status_code == 303
            token = csrf_of(client.get("/login").text)
            answer = client.post("/login", data={"name": ADMIN, "password": ADMIN_PASSWORD,
                                                 "csrf": token, "next": "/stock"})
            assert answer.status_code == 303 and answer.headers["location"] == "/stock"
            assert client.get("/stock").status_code == 200
            assert client.get("/static/dashboard.css").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "a random one was made" in stderr  # no session_secret in this config


def test_the_daemon_serves_the_dashboard_beside_metrics_on_one_listener(
    tmp_path: Path
) -> None:
    port = free_port()
    config = parse_config(f"""
[database]
url = "sqlite:///{tmp_path}/ledger.db"
[daemon]
metrics_listen = "127.0.0.1:{port}"
[web]
listen = "127.0.0.1:{port}"
session_secret = "{SESSION_SECRET}"
{USERS}
{CHANNELS}
""", env={})
    daemon = Daemon(config, tmp_path / "channels.toml", env={})
    try:
        daemon._serve()
        assert len(daemon.servers) == 1
        url = daemon.servers[0].url
        assert "channelsync_up" in httpx.get(f"{url}/metrics").text
        assert httpx.get(f"{url}/healthz").status_code in (200, 503)
        assert httpx.get(f"{url}/login").status_code == 200
        assert httpx.get(f"{url}/stock").headers["location"].startswith("/login")
    finally:
        for server in daemon.servers:
            server.stop()
        if daemon.metrics:
            daemon.metrics.close()
        daemon.app.close()
