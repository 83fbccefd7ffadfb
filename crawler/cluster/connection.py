"""The Redis client every cluster component of a worker shares, counting its round trips.

One :class:`CountingRedis` per worker process: the scrapy-redis scheduler, the duplicate
filter, the origin gate, the reservation store and the heartbeat all use it, so
``polite/cluster/redis_calls`` counts every round trip the worker makes (a pipeline or a
script call is one). The client is synchronous, as scrapy-redis's is: on a local network a
call takes well under a millisecond, and the reactor thread waits for it.
"""

from __future__ import annotations

from collections import Counter
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


#: Round trips of these kinds are background work (presence, liveness, idle polling, start
#: URLs, sign-on and sign-off), not the work of one page: ``CountingRedis.kinds`` tells them
#: apart so that a benchmark can report both (the per-page budget counts everything).
BACKGROUND_KINDS = frozenset({"beat", "name", "job_state", "epoch", "LPOP", "ZCARD",
                              "HGETALL", "SADD", "pipeline:DEL+HDEL+SREM"})


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


class CountingPipeline(Pipeline):
    """A pipeline whose ``execute`` (one round trip) is counted."""

    on_call: Callable[[str], None] | None = None

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.on_call is not None and (self.command_stack or self.watching):
            names = sorted({_text(c[0][0]) for c in self.command_stack})
            self.on_call("pipeline:" + "+".join(names))
        return super().execute(raise_on_error)


class CountingRedis(redis.Redis):
    """``redis.Redis`` that calls ``on_call()`` once per round trip.

    Every round trip goes through :meth:`execute_command` (a command, or a script's
    ``EVALSHA``: a script that Redis had flushed costs a ``SCRIPT LOAD`` and a second
    ``EVALSHA``, each counted) or a pipeline's ``execute`` (one, whatever it holds). ``kinds``
    counts them by kind: a script by the name it was registered under
    (:meth:`register_script`), a command by its name, a pipeline by its commands."""

    def __init__(self, *args: Any, on_call: Callable[[], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_call = on_call
        self.calls = 0
        self.kinds: Counter[str] = Counter()
        self._script_names: dict[str, str] = {}

    def register_script(self, script: Any, name: str | None = None) -> Any:
        """``redis.Redis.register_script``; ``name`` labels its calls in :attr:`kinds`."""
        obj = super().register_script(script)
        if name is not None:
            self._script_names[obj.sha] = name
        return obj

    def _count(self, kind: str) -> None:
        self.calls += 1
        self.kinds[kind] += 1
        if self.on_call is not None:
            self.on_call()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        kind = _text(args[0]).upper() if args else "?"
        if kind == "EVALSHA" and len(args) > 1:
            kind = self._script_names.get(_text(args[1]), "EVALSHA")
        self._count(kind)
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = CountingPipeline(self.connection_pool, self.response_callbacks, transaction,
                                shard_hint)
        pipe.on_call = self._count
        return pipe

    def background_calls(self) -> int:
        """Round trips of :data:`BACKGROUND_KINDS` so far."""
        return sum(n for k, n in self.kinds.items() if k in BACKGROUND_KINDS)


def named_script(client: Any, text: str, name: str) -> Any:
    """``client.register_script(text)``, its calls counted as ``name`` by a
    :class:`CountingRedis` (any other client registers it unnamed)."""
    if isinstance(client, CountingRedis):
        return client.register_script(text, name)
    return client.register_script(text)


def redis_client(url: str, on_call: Callable[[], None] | None = None) -> CountingRedis:
    """A counting client for ``url`` (bytes in, bytes out: no response decoding)."""
    check_redis_url(url)
    client = CountingRedis.from_url(url, **REDIS_PARAMS)
    client.on_call = on_call
    return client
