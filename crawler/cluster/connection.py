"""The Redis client every cluster component of a worker shares, counting its round trips.

One :class:`CountingRedis` per worker process: the scrapy-redis scheduler, the duplicate
filter, the origin gate, the reservation store and the heartbeat all use it, so
``polite/cluster/redis_calls`` counts every round trip the worker makes (a pipeline or a
script call is one). The client is synchronous, as scrapy-redis's is: on a local network a
call takes well under a millisecond, and the reactor thread waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.client import Pipeline

#: Connection parameters (as scrapy-redis's REDIS_PARAMS, with shorter timeouts: a worker
#: that cannot reach Redis should say so, not hang for half a minute per call).
REDIS_PARAMS: dict[str, Any] = {
    "socket_timeout": 10,
    "socket_connect_timeout": 10,
    "retry_on_timeout": True,
    "health_check_interval": 0,
}
REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_redis_url(url: str, what: str = "redis_url") -> str:
    """Refuse anything but a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in REDIS_SCHEMES or not (parts.netloc or parts.path):
        raise ValueError(f"{what}: {url!r} is not a redis://host:port/db URL")
    return url


class CountingPipeline(Pipeline):
    """A pipeline whose ``execute`` (one round trip) is counted."""

    on_call: Callable[[], None] | None = None

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.on_call is not None and (self.command_stack or self.watching):
            self.on_call()
        return super().execute(raise_on_error)


class CountingRedis(redis.Redis):
    """``redis.Redis`` that calls ``on_call()`` once per round trip."""

    def __init__(self, *args: Any, on_call: Callable[[], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_call = on_call
        self.calls = 0

    def _count(self) -> None:
        self.calls += 1
        if self.on_call is not None:
            self.on_call()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self._count()
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = CountingPipeline(self.connection_pool, self.response_callbacks, transaction,
                                shard_hint)
        pipe.on_call = self._count
        return pipe


def redis_client(url: str, on_call: Callable[[], None] | None = None) -> CountingRedis:
    """A counting client for ``url`` (bytes in, bytes out: no response decoding)."""
    check_redis_url(url)
    client = CountingRedis.from_url(url, **REDIS_PARAMS)
    client.on_call = on_call
    return client
