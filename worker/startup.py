"""What every ``celery -A worker.app`` process needs before the app is built, refused in one line.

Celery imports ``worker.app`` for each of its commands: a worker (``celery -A worker.app worker``, which
``tileclass worker`` runs per slot) and Flower (``celery --app worker.app flower``, the compose file's monitor).
An invalid setting there, such as the ``.env.example`` placeholder password in ``TILECLASS_BROKER_URL``, surfaced
as Celery's 39-line "Unable to load celery application" traceback; Flower, which reads its login from
``FLOWER_BASIC_AUTH`` itself, let the placeholder password in. Both now stop the process with one line naming the
variable, and exit code 2.
"""

from __future__ import annotations

import os
import sys

from core.errors import SettingsError
from core.settings import PLACEHOLDER_PASSWORDS, Settings, get_settings

FLOWER_LOGIN = "FLOWER_BASIC_AUTH"


def settings_or_exit() -> Settings:
    """The settings, checked with Flower's login; on a problem, one line on stderr and exit code 2."""
    try:
        check_flower_login(os.environ.get(FLOWER_LOGIN, ""))
        return get_settings()
    except SettingsError as exc:
        sys.stderr.write(f"cannot start: {exc}\n")  # logging is not set up yet while Celery imports the app
        raise SystemExit(2) from None


def check_flower_login(login: str) -> None:
    """Refuse a Flower login (``user:password``, comma-separated for several) whose password is empty or the
    ``.env.example`` placeholder; no login at all is Flower's own business (the compose file always sets one)."""
    for pair in filter(None, (part.strip() for part in login.split(","))):
        user, _, password = pair.partition(":")
        if not password or password in PLACEHOLDER_PASSWORDS:
            problem = "empty" if not password else "the .env.example placeholder"
            raise SettingsError(f"{FLOWER_LOGIN}: the password of user {user!r} is {problem}: set FLOWER_PASSWORD "
                                "in .env (docker compose), e.g. from `openssl rand -hex 24`")
