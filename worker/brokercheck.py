"""Refuse to start workers against a Redis broker that rejects their credentials.

Celery retries a broker connection that fails (100 times, over many minutes), which is right while Redis restarts
but only hides a wrong password: the worker would sit there logging connection errors instead of saying what is
wrong. A password error never heals by itself, so ``tileclass worker`` (and a plain ``celery -A worker.app worker``)
checks the credentials once before starting and stops with one line. A broker that is merely down or still
starting is left to Celery's retries.
"""

from __future__ import annotations

from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError, RedisError, ResponseError

from core.broker import redis_client
from core.errors import SettingsError
from core.settings import Settings


class BrokerCredentialsError(SettingsError):
    """The broker refused the user name or password of ``TILECLASS_BROKER_URL``."""


def check_broker_credentials(settings: Settings) -> None:
    """Raise ``BrokerCredentialsError`` when the Redis broker refuses the configured credentials."""
    client = redis_client(settings, timeout=5)
    if client is None:
        return
    url = settings.broker_url
    try:
        client.ping()
    except (AuthenticationError, AuthenticationWrongNumberOfArgsError) as exc:
        raise _refused(url, exc) from None
    except ResponseError as exc:  # NOAUTH (a password is required) or WRONGPASS, depending on the server version
        if str(exc).upper().startswith(("NOAUTH", "WRONGPASS", "INVALID USERNAME")):
            raise _refused(url, exc) from None
    except RedisError:
        return  # unreachable or starting: Celery's own retries handle that, and log it
    finally:
        client.close()


def _refused(url: str, exc: BaseException) -> BrokerCredentialsError:
    detail = str(exc).strip().rstrip(".") or exc.__class__.__name__
    return BrokerCredentialsError(f"the broker at {maybe_sanitize_url(url)} refused the credentials in "
                                  f"TILECLASS_BROKER_URL ({detail}): set redis://:PASSWORD@host:port/db")
