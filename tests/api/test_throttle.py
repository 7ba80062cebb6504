"""Wrong tokens are throttled per client address (``api.throttle``): a few are free, then each locks the address out
for twice as long, up to a cap; the right token is refused too while locked out; an address is forgotten after a
quiet window or a right token, other addresses are never affected, and the table is bounded. Time is a fake clock,
so no test depends on the machine's speed."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.auth import COOKIE
from api.config import ServeConfig
from api.main import create_app
from api.throttle import Throttle, address_key
from tests.api.support import Region

TOKEN = "correct-horse-battery-staple"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_few_wrong_tries_are_free_then_each_locks_the_address_out_twice_as_long_up_to_the_cap() -> None:
    clock = Clock()
    throttle = Throttle(free=3, window=600, max_delay=60, clock=clock)
    waits = []
    for _ in range(12):
        throttle.failed("203.0.113.5")
        waits.append(throttle.wait("203.0.113.5"))
        clock.now += waits[-1]  # the guesser waits exactly as long as it is told
    assert waits == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert throttle.wait("203.0.113.6") == 0  # another address: never affected
    throttle.failed("203.0.113.5")
    clock.now += 59
    assert throttle.wait("203.0.113.5") == 1  # never longer than the cap
    clock.now += 601  # a quiet window: the address is forgotten
    throttle.failed("203.0.113.5")
    assert throttle.wait("203.0.113.5") == 0


def test_a_right_token_forgets_the_address_and_the_table_is_bounded() -> None:
    clock = Clock()
    throttle = Throttle(free=1, max_clients=100, clock=clock)
    throttle.failed("198.51.100.1")
    throttle.succeeded("198.51.100.1")
    throttle.failed("198.51.100.1")
    assert throttle.wait("198.51.100.1") == 0  # counting again from one
    for host in range(10_000):  # a flood of addresses
        throttle.failed(f"10.{host // 65536}.{host // 256 % 256}.{host % 256}")
    assert len(throttle._failures) == 100


def test_an_ipv6_host_is_counted_by_its_64_and_a_mapped_ipv4_as_the_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7" and address_key(None) == "?"


def test_wrong_tokens_and_login_forms_get_429_with_retry_after_per_address(sqlite_region: Region) -> None:
    clock = Clock()
    app = create_app(ServeConfig(token=TOKEN))
    app.state.throttle.clock = clock
    guesser, user = TestClient(app, client=("203.0.113.5", 40000)), TestClient(app, client=("198.51.100.7", 40000))
    free = app.state.throttle.free
    answers = [guesser.get("/api/jobs", headers={"Authorization": f"Bearer guess-{n}"}).status_code
               for n in range(free)]
    answers += [guesser.get("/api/jobs?tok%65n=guess").status_code]  # the parameter is a try too
    assert answers == [401] * free + [401]
    locked = guesser.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"})  # even the right one
    assert locked.status_code == 429 and locked.headers["retry-after"] == "1"
    assert "too many wrong tokens from this address" in locked.json()["detail"] and TOKEN not in locked.text
    form = guesser.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert form.status_code == 429 and "set-cookie" not in form.headers and form.headers["retry-after"] == "1"
    assert user.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200  # others: fine
    assert guesser.get("/healthz").status_code == 200
    clock.now += 1
    assert guesser.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200

    for _ in range(free + 1):  # the login form counts the same way
        assert user.post("/login", data={"token": "guess", "next": "/"}).status_code == 401
    assert user.post("/login", data={"token": "guess", "next": "/"}).status_code == 429


def test_a_stale_cookie_is_no_try(sqlite_region: Region) -> None:
    clock = Clock()
    app = create_app(ServeConfig(token=TOKEN))
    app.state.throttle.clock = clock
    browser = TestClient(app, client=("198.51.100.7", 40000), cookies={COOKIE: "from-the-old-token"})
    for _ in range(app.state.throttle.free + 5):  # a page full of tiles, with the cookie of a token since changed
        assert browser.get("/static/app.js").status_code == 401
    assert browser.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False).status_code == 303
