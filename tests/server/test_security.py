"""Loopback by default, credentials beyond it, no cross-origin writes, bounded bodies, no way out of
the output folder."""

from __future__ import annotations

import base64
import http.client
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from keypaint.cli.serve_cmd import serve_command
from keypaint.server.app import create_app
from keypaint.server.config import ServerConfig
from tests.server.conftest import FAST, Running, wait_job

ROUTES = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/info"), ("GET", "/api/jobs"),
          ("GET", "/api/images"), ("GET", "/api/jobs/x/events"), ("GET", "/files/2026-01-01/00000-1.png"),
          ("GET", "/sdapi/v1/progress"), ("GET", "/sdapi/v1/sd-models"), ("POST", "/sdapi/v1/txt2img"),
          ("POST", "/api/jobs"), ("DELETE", "/api/jobs/x"), ("GET", "/openapi.json"),
          ("GET", "/nothing-here")]


def test_other_addresses_need_credentials(config: ServerConfig, painter) -> None:  # type: ignore[no-untyped-def]
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(ValueError, match="--auth"):
            create_app(replace(config, host=host), painter=painter)
    replace(config, host="0.0.0.0", token="t0ken-long-enough").check_bind()  # with credentials it may start
    replace(config, host="::1").check_bind()  # IPv6 loopback needs none

    app = typer.Typer()
    app.command()(serve_command)
    result = CliRunner().invoke(app, ["--host", "0.0.0.0", "--out", str(config.out)])
    assert result.exit_code == 2 and "--auth USER:PASS or --token" in result.output


def test_basic_auth_on_every_route(serve, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    running = serve(replace(config, auth=("ann", "s3cret-horse-battery")))
    with running.client() as client:
        for method, path in ROUTES:
            response = client.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"].startswith("Basic")
        wrong = client.get("/api/info", auth=("ann", "guess"))
        assert wrong.status_code == 401
    with running.client(auth=("ann", "s3cret-horse-battery")) as client:
        assert client.get("/").status_code == 200
        job = client.post("/api/jobs", json={"keywords": ["x"], **FAST}).json()
        assert wait_job(client, job["id"])["status"] == "succeeded"
        assert client.get(job["images"][0]["url"] if "images" in job else "/api/images").status_code == 200


def test_token_as_header_or_cookie(serve, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    running = serve(replace(config, token="tok-123-456-789"))
    with running.client() as client:
        assert client.get("/api/info").status_code == 401
        assert client.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/info", headers={"Authorization": "Bearer tok-123-456-789"}).status_code == 200
        page = client.get("/", params={"token": "tok-123-456-789"})  # the link a user opens once
        assert page.status_code == 200 and "keypaint_token" in page.headers["set-cookie"]
        assert "HttpOnly" in page.headers["set-cookie"]
        assert client.get("/api/info").status_code == 200  # the cookie carries it from now on


def test_foreign_origins_cannot_change_state(server: Running) -> None:
    own = server.url
    with server.client() as client:
        foreign = {"Origin": "http://evil.example"}
        assert client.post("/api/jobs", json={"keywords": ["x"], **FAST}, headers=foreign).status_code == 403
        assert client.delete("/api/jobs/x", headers=foreign).status_code == 403
        assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "x"},
                           headers=foreign).status_code == 403
        assert client.post("/sdapi/v1/interrupt", headers={"Origin": "null"}).status_code == 403
        assert client.post("/sdapi/v1/interrupt", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert client.get("/api/info", headers=foreign).status_code == 200  # reads: the browser hides them
        assert "access-control-allow-origin" not in client.get("/api/info", headers=foreign).headers
        assert client.post("/sdapi/v1/interrupt", headers={"Origin": own}).status_code == 200
        assert client.get("/api/info", headers={"Host": "attacker.example:7860"}).status_code == 403


def test_page_loads_nothing_from_outside(server: Running) -> None:
    with server.client() as client:
        page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "http" not in policy
    assert "http://" not in page.text and "https://" not in page.text
    static = Path(__file__).parents[2] / "src" / "keypaint" / "server" / "static"
    for asset in static.iterdir():
        if asset.suffix in (".js", ".css", ".html"):
            text = asset.read_text()
            assert "http://" not in text and "https://" not in text and "//cdn" not in text, asset


def test_big_bodies_are_refused_early(serve, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    running = serve(replace(config, max_body_bytes=64 * 1024))
    big = b'{"prompt": "' + b"a" * (100 * 1024) + b'"}'
    with running.client() as client:
        declared = client.post("/sdapi/v1/txt2img", content=big, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413

        def chunks():  # no Content-Length: counted while it arrives
            for i in range(0, len(big), 8192):
                yield big[i:i + 8192]

        streamed = client.post("/api/jobs", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        long_prompt = client.post("/sdapi/v1/txt2img", json={"prompt": "a" * 20_000, **FAST})
        assert long_prompt.status_code == 422 and long_prompt.json()["detail"][0]["loc"][-1] == "prompt"
        assert client.get("/api/jobs").json()["jobs"] == []


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written (httpx would normalise dot segments away)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_file_names_never_leave_the_output_folder(server: Running, tmp_path: Path) -> None:
    secret = b"\x89PNG top secret"
    (tmp_path / "secret.png").write_bytes(secret)
    out = server.config.out
    (out / "2026-01-01").mkdir(parents=True)
    (out / "2026-01-01" / "link.png").symlink_to(tmp_path / "secret.png")
    with server.client() as client:
        job = client.post("/api/jobs", json={"keywords": ["x"], **FAST}).json()
        done = wait_job(client, job["id"])
    good = done["images"][0]["url"]
    assert raw_get(server.url, good)[0] == 200
    secret_path = str(tmp_path / "secret.png")
    attempts = [
        "/files/../secret.png", "/files/%2e%2e/secret.png", "/files/%2E%2E%2Fsecret.png",
        "/files/..%2fsecret.png", "/files/%252e%252e%252fsecret.png", "/files/..%5csecret.png",
        "/files/2026-01-01/../../secret.png", "/files/2026-01-01/%2e%2e/%2e%2e/secret.png",
        f"/files/{secret_path}", f"/files//{secret_path}", f"/files/%2f{secret_path.lstrip('/')}",
        "/files/2026-01-01/link.png", "/files/keypaint-server.sqlite3", "/files/.%2e/secret.png",
        "/files/%00../secret.png", "/static/../../../../secret.png", "/static/%2e%2e/%2e%2e/config.py",
    ]
    for path in attempts:
        status, body = raw_get(server.url, path)
        assert status in (400, 404), (path, status)
        assert secret not in body and b"ServerConfig" not in body, path


def test_png_info_and_uploads_never_fetch(server: Running) -> None:
    with server.client() as client:
        response = client.post("/sdapi/v1/png-info", json={"image": "http://127.0.0.1:1/x.png"})
        assert response.status_code == 422 and "not fetched" in response.json()["error"]
        tiny = base64.b64encode(b"GIF89a").decode()
        assert client.post("/sdapi/v1/png-info", json={"image": tiny}).status_code == 422


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--token", " "], {}, "is blank"),
        ([], {"KEYPAINT_SERVE_TOKEN": " "}, "is blank"),
        (["--token", "+"], {}, "shorter than 12 characters"),
        (["--token", "short-tok"], {}, "shorter than 12 characters"),
        (["--token", "a long token with spaces"], {}, "must not contain spaces"),
        (["--auth", " : "], {}, "user name is blank"),
        (["--auth", "ann:            "], {}, "password is blank"),
        (["--auth", "ann:s3cret"], {}, "shorter than 12 characters"),
        (["--auth", ""], {}, "USER:PASSWORD"),
    ],
)
def test_blank_or_short_credentials_never_bind(tmp_path: Path, args: list[str], env: dict[str, str],
                                               message: str) -> None:
    """Before the model loads or a port is bound: exit 2 and one line naming the credential."""
    app = typer.Typer()
    app.command()(serve_command)
    result = CliRunner().invoke(app, ["--host", "0.0.0.0", "--model", "nope", "--out", str(tmp_path / "o"),
                                      *args], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output and "nope" not in result.output
    assert len(result.output.strip().splitlines()) <= 2  # one message (wrapped at most once)
    with pytest.raises(ValueError, match="blank"):
        ServerConfig(token=" ").check_bind()  # on loopback too: a blank token is always a mistake


def test_weak_credentials_are_not_accepted_by_the_gate(serve, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    """?token=%20, ?token=+ and Basic " : " against a server with a real token and password: all 401."""
    running = serve(replace(config, token="t0ken-long-enough", auth=("ann", "s3cret-horse-battery")))
    with running.client() as client:
        for query in ("%20", "+", ""):
            assert client.get(f"/api/info?token={query}").status_code == 401
        assert client.get("/api/info", auth=(" ", " ")).status_code == 401
        assert client.get("/api/info?token=t0ken-long-enough").status_code == 200


@pytest.mark.parametrize("value", ["nobody", "ann:", ":pw"])
def test_auth_option_format(value: str) -> None:
    from keypaint.server.config import parse_auth

    with pytest.raises(ValueError):
        parse_auth(value)


def test_httpx_sees_401_challenge_for_streams(serve, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    running = serve(replace(config, auth=("a", "b-long-password")))
    with httpx.Client(base_url=running.url) as client, client.stream("GET", "/api/jobs/x/events") as stream:
        assert stream.status_code == 401
