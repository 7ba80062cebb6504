"""A real ``tileclass serve`` on 127.0.0.1 without ``TILECLASS_API_TOKEN``: it makes a token for its run and prints
it as a login URL after the serving line, as Jupyter does; that URL signs a browser in for writes, which the server
refuses without it. With ``TILECLASS_API_TOKEN`` set it prints no token."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from api.auth import CSRF_HEADER
from tests.api.server_process import running_server
from tests.api.support import BASE, ZOOM, Region

LOGIN = re.compile(r"(http://127\.0\.0\.1:\d+/login\?token=([A-Za-z0-9_-]+))$", re.MULTILINE)


def test_serve_prints_a_login_url_with_a_token_of_its_own_run_that_signs_a_browser_in(
        sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> None:
    correction = {"tile": f"{ZOOM}/{BASE[0]}/{BASE[1]}", "label": "River", "author": "web"}
    tokens = []
    for run in range(2):
        with running_server(sqlite_url, tmp_path / f"serve-{run}.log") as server:
            output = server.output()
            found = LOGIN.search(output)
            assert found is not None, output
            url, token = found.groups()
            assert url.startswith(server.url + "/login?token=") and len(token) >= 40
            assert output.index("tileclass serving http://127.0.0.1") < output.index(url)  # bound, then said
            tokens.append(token)
            with httpx.Client(base_url=server.url) as browser:
                assert browser.get("/api/jobs").status_code == 200  # reads: open on loopback, as before
                assert browser.post("/api/corrections", json=correction).status_code == 401
                assert browser.get("/api/session").json()["signed_in"] is False
                landed = browser.get(url, follow_redirects=False)  # the printed URL, as a browser opens it
                assert landed.status_code == 303 and landed.headers["location"] == "/"
                session = browser.get("/api/session").json()
                assert session["signed_in"] is True
                assert browser.post("/api/corrections", json=correction).status_code == 403  # no CSRF header
                done = browser.post("/api/corrections", json=correction, headers={CSRF_HEADER: session["csrf_token"]})
                assert done.status_code == 200, done.text
            if run == 1:  # the first run's token is no token of this one
                old = httpx.post(f"{server.url}/api/corrections", json=correction,
                                 headers={"Authorization": f"Bearer {tokens[0]}"})
                assert old.status_code == 401
                new = httpx.post(f"{server.url}/api/corrections", json=correction,
                                 headers={"Authorization": f"Bearer {tokens[1]}"})
                assert new.status_code == 200
    assert tokens[0] != tokens[1]
    assert tokens[1] not in server.output().replace(tokens[1], "", 1)  # printed once, never logged (access log)

    configured = "correct-horse-battery-staple"
    with running_server(sqlite_url, tmp_path / "with-token.log", env={"TILECLASS_API_TOKEN": configured}) as server:
        assert httpx.post(f"{server.url}/api/corrections", json=correction,
                          headers={"Authorization": f"Bearer {configured}"}).status_code == 200
        assert "login?token=" not in server.output() and configured not in server.output()


def test_every_server_process_takes_the_runs_token(sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> None:
    correction = {"tile": f"{ZOOM}/{BASE[0]}/{BASE[1]}", "label": "River"}
    with running_server(sqlite_url, tmp_path / "serve.log", args=("--workers", "2")) as server:
        found = LOGIN.search(server.output())
        assert found is not None, server.output()
        for _ in range(6):  # each process builds its app from the settings and the token handed down to it
            answer = httpx.post(f"{server.url}/api/corrections", json=correction,
                                headers={"Authorization": f"Bearer {found.group(2)}"})
            assert answer.status_code == 200, answer.text
        token = found.group(2).encode()
        processes = [server.process.pid, *_children(server.process.pid)]
        assert len(processes) >= 3  # serve, and its two server processes
        for pid in processes:  # handed in the configuration, never through what every child would inherit
            assert token not in Path(f"/proc/{pid}/environ").read_bytes(), pid


def _children(pid: int) -> list[int]:
    found = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
             for child in (task / "children").read_text().split()]
    return found + [grandchild for child in found for grandchild in _children(child)]
