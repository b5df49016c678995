"""Request limits: body size, requests per minute per client, login throttling.

:class:`LimitMiddleware` is a plain ASGI middleware (no ``BaseHTTPMiddleware``)
added outermost, outside the tile cache, so that cached tiles count against a
client's budget too. It answers, in the OGC exception JSON of the API:

- 413 ``PayloadTooLarge`` when a request body is larger than the limit of its
  path -- on ``Content-Length`` before anything is read, and while the body
  streams in, so a chunked body without a length cannot get past;
- 429 ``TooManyRequests`` with ``Retry-After`` when a client is over its
  requests per minute (token buckets keyed by the *account* of the
  credential presented -- every key and token of one account share one
  budget, so minting tokens buys nothing -- else by the client address; a
  credential the auth layer has not accepted yet also spends its address's
  budget of unverified requests). Other responses carry ``RateLimit-Limit``
  and ``RateLimit-Remaining``.

:class:`LoginThrottle` refuses logins for a username or an address after
repeated failures (the login route calls it); :func:`check_feature_count`
caps the features of one write request.

Everything here is in memory, per process; see the notes on
:class:`RateLimiter`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis_server.api.auth import CredentialReader
from gis_server.api.errors import ogc_exception
from gis_server.auth import tokens
from gis_server.auth.settings import AuthSettings
from gis_server.errors import PayloadTooLarge, TooManyRequests, Unauthorized

log = logging.getLogger("gis_server.limits")

MIB = 1024 * 1024

Clock = Callable[[], float]


class LimitSettings(BaseSettings):
    """Limits of the HTTP server (env prefix ``GIS_LIMITS_``).

    Prefix lists are JSON in the environment, e.g.
    ``GIS_LIMITS_EXEMPT_PREFIXES='["/static/", "/health"]'``.
    """

    model_config = SettingsConfigDict(
        env_prefix="GIS_LIMITS_", env_file=".env", extra="ignore"
    )

    max_body_bytes: int = Field(
        default=10 * MIB,
        ge=0,
        description="[D] Largest request body in bytes (413 above). Project "
        "default: a write of max_features_per_write detailed polygons in GeoJSON "
        "stays well under 10 MiB.",
    )
    max_upload_bytes: int = Field(
        default=20 * MIB,
        ge=0,
        description="[D] Largest request body under upload_prefixes (evidence "
        "photos and scanned documents). Project default.",
    )
    upload_prefixes: tuple[str, ...] = Field(
        default=("/supervision/warnings/", "/supervision/evidence"),
        description="Path prefixes whose bodies may reach max_upload_bytes.",
    )
    rate_limit: bool = Field(
        default=True, description="Limit requests per minute per client (429)."
    )
    requests_per_minute: int = Field(
        default=1200,
        ge=1,
        description="[D] Budget of a client presenting a credential (API key, "
        "bearer token or sign-in cookie), per process. Project default: a map "
        "page with three tiled layers asks ~60 tiles per pan; the bucket holds "
        "a minute's budget, so bursts pass and only sustained floods wait.",
    )
    anonymous_requests_per_minute: int = Field(
        default=300,
        ge=1,
        description="[D] Budget of a client without a credential, per address "
        "(IPv6: per network, see ipv6_prefix), per process. Project default.",
    )
    unverified_requests_per_minute: int = Field(
        default=120,
        ge=1,
        description="[D] Requests per minute from one address presenting a "
        "credential the auth layer has not accepted yet (a key's first request, "
        "a made-up or revoked key, an expired sign-in cookie): a flood of "
        "made-up keys can neither buy fresh budgets nor hammer the account "
        "lookups. Project default (as anonymous_requests_per_minute).",
    )
    exempt_prefixes: tuple[str, ...] = Field(
        default=("/static/",),
        description="Path prefixes not counted against any budget.",
    )
    ipv6_prefix: int = Field(
        default=64,
        ge=32,
        le=128,
        description="IPv6 clients are counted per network of this prefix length "
        "(a host usually owns a whole /64).",
    )
    max_keys: int = Field(
        default=50_000,
        ge=10,
        description="Most clients tracked per process (least recently seen "
        "evicted first; idle clients are dropped after a minute anyway).",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="[D] Failed logins for one username within "
        "login_window_seconds before its logins are refused. Project default "
        "(lockout practice: OWASP Authentication Cheat Sheet, 'Account Lockout').",
    )
    login_ip_max_failures: int = Field(
        default=20,
        ge=1,
        description="[D] Failed logins from one address (any usernames) within "
        "login_window_seconds before its logins are refused. Project default.",
    )
    login_window_seconds: int = Field(
        default=300,
        ge=1,
        description="[D] Window counting failed logins, and length of the first "
        "refusal; each further refusal of the same username or address doubles "
        "it, up to login_max_lockout_seconds. Project default.",
    )
    login_max_lockout_seconds: int = Field(
        default=3600,
        ge=1,
        description="[D] Longest refusal after repeated failed logins; a quiet "
        "period this long also forgets earlier refusals. Project default.",
    )
    login_max_keys: int = Field(
        default=20_000,
        ge=10,
        description="Most usernames (and, separately, addresses) the login "
        "throttle tracks per process.",
    )
    max_features_per_write: int = Field(
        default=1000,
        ge=1,
        description="[D] Most features one write request may create or change "
        "(413 above; clients send batches). Project default.",
    )


# ---------------------------------------------------------------------------
# token buckets


@dataclass(slots=True)
class Decision:
    """The answer of :meth:`RateLimiter.take`."""

    allowed: bool
    limit: int
    remaining: int
    #: whole seconds until the next request can pass (0 when allowed)
    retry_after: int
    #: why a request is refused, for the client
    reason: str = ""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    refused: bool = False


class RateLimiter:
    """Token buckets per key: ``per_minute`` requests, refilled continuously.

    A bucket holds at most ``per_minute`` tokens (the burst) and refills at
    ``per_minute / 60`` tokens per second; a request takes one. A bucket
    untouched for 60 s is full again, i.e. no different from a missing one,
    so idle keys are dropped as new ones arrive; beyond ``max_keys`` the least
    recently used key is evicted (its client starts afresh with a full bucket:
    under a flood of distinct keys the limiter fails open for the evicted
    keys rather than growing without bound).

    Not thread-safe: the middleware calls it from the event loop only.

    NOTE: state is per process. Each uvicorn worker counts on its own, so
    with ``--workers N`` a client may get up to N times its budget; a shared
    store (Redis, PostgreSQL) would be needed for an exact global budget.
    """

    #: seconds after which any bucket is full again (capacity / rate)
    IDLE_S = 60.0

    def __init__(self, max_keys: int = 50_000, clock: Clock = time.monotonic):
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        #: accepted credential (digest) -> its account's bucket key, at most
        #: max_keys (least recently used forgotten: its next request is
        #: unverified once more)
        self._accounts: OrderedDict[str, str] = OrderedDict()
        self._evicted = 0
        self._last_full_warning = -math.inf

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, bucket: _Bucket, per_minute: int, now: float) -> float:
        return min(
            float(per_minute),
            bucket.tokens + (now - bucket.stamp) * per_minute / 60.0,
        )

    def account_of(self, credential: str) -> str | None:
        """The bucket key of the account whose credential the auth layer
        accepted (see :meth:`remember`), or None."""
        account = self._accounts.get(credential)
        if account is not None:
            self._accounts.move_to_end(credential)
        return account

    def remember(self, credential: str, account: str) -> None:
        """The auth layer accepted ``credential`` as ``account``'s."""
        self._accounts[credential] = account
        self._accounts.move_to_end(credential)
        while len(self._accounts) > self.max_keys:
            self._accounts.popitem(last=False)

    def forget(self, credential: str) -> None:
        """The auth layer refused ``credential`` (revoked, expired, voided)."""
        self._accounts.pop(credential, None)

    def take(self, key: str, per_minute: int) -> Decision:
        """Take one token from ``key``'s bucket if there is one."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._evict(now)
            bucket = self._buckets[key] = _Bucket(float(per_minute), now)
        else:
            bucket.tokens = self._level(bucket, per_minute, now)
            bucket.stamp = now
            self._buckets.move_to_end(key)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.refused = False
            return Decision(True, per_minute, int(bucket.tokens), 0)
        # (less a hair: 0.95 tokens at 3/min is 1.0000000000000009 s of float)
        wait = math.ceil((1.0 - bucket.tokens) * 60.0 / per_minute - 1e-9)
        if not bucket.refused:  # once per episode, not once per refused request
            bucket.refused = True
            log.info(
                "rate limit reached",
                extra={"client_key": key[:24], "limit_per_minute": per_minute},
            )
        return Decision(False, per_minute, 0, max(1, wait))

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:  # least recently used first: stop at the first busy one
            oldest = next(iter(buckets.values()))
            if now - oldest.stamp < self.IDLE_S:
                break
            buckets.popitem(last=False)
        if len(buckets) >= self.max_keys:
            buckets.popitem(last=False)
            self._evicted += 1
            if now - self._last_full_warning >= self.IDLE_S:
                self._last_full_warning = now
                log.warning(
                    "rate limiter full: evicting active clients",
                    extra={"max_keys": self.max_keys, "evicted": self._evicted},
                )


# ---------------------------------------------------------------------------
# who is asking


def _digest(secret: str) -> str:
    # a digest, not the secret, is what stays in memory (and in log lines)
    return hashlib.blake2b(secret.encode(), digest_size=12).hexdigest()


@lru_cache(maxsize=8192)  # parsing costs ~4 us (IPv4), more for IPv6
def address_key(host: str | None, ipv6_prefix: int = 64) -> str:
    """The key of a client address: IPv4 as is, IPv6 as its ``/ipv6_prefix``.

    Examples
    --------
    >>> address_key("203.0.113.9")
    '203.0.113.9'
    >>> address_key("2001:db8:1:2:aaaa::1")
    '2001:db8:1:2::/64'
    """
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # "testclient", a unix socket path...
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        mask = ((1 << ipv6_prefix) - 1) << (128 - ipv6_prefix)
        return f"{ipaddress.IPv6Address(int(ip) & mask)}/{ipv6_prefix}"
    return str(ip)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses it before we are called
    return None


# ---------------------------------------------------------------------------
# the middleware


class _BodyOverLimit(HTTPException):
    """Raised by ``receive`` when a streamed body passes the limit.

    An ``HTTPException`` so that FastAPI's body parsing lets it through
    (it turns other exceptions into a 400); the middleware then answers 413
    in place of whatever the application made of it.
    """

    def __init__(self) -> None:
        super().__init__(413, "Request body too large.")


class LimitMiddleware:
    """413 on oversized bodies, 429 over the per-client budget (plain ASGI).

    Add it last (outermost): outside the tile cache, so that tiles served
    from the cache are counted too, and outside the auth middleware, so that
    made-up credentials are throttled before they cost an account lookup.
    After the response it reads the caller the auth middleware left in
    ``scope["state"]["principal"]`` to learn whether a credential was accepted
    and whose it is; from then on the credential's requests are counted on
    that account's bucket, with no lookup of its own (a dictionary read).

    The client address is ``scope["client"]``: behind a reverse proxy, that is
    the proxy unless uvicorn trusts its ``X-Forwarded-For`` (``--proxy-headers``
    with ``--forwarded-allow-ips`` naming the proxy; uvicorn trusts 127.0.0.1
    by default). Headers are not parsed here: a client could forge them.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: LimitSettings | None = None,
        *,
        auth: AuthSettings | None = None,
        limiter: RateLimiter | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.app = app
        self.settings = settings or LimitSettings()
        self.auth = auth or AuthSettings()
        # the credential as the auth middleware reads it (the same names)
        self.credentials = CredentialReader(self.auth)
        if limiter is None:  # not `or`: an empty limiter is falsy (__len__)
            limiter = RateLimiter(self.settings.max_keys, clock)
        self.limiter = limiter
        self._uploads = tuple(self.settings.upload_prefixes)
        self._exempt = tuple(self.settings.exempt_prefixes)

    def body_limit(self, path: str) -> int:
        """The largest body accepted on ``path``."""
        if path.startswith(self._uploads):
            return self.settings.max_upload_bytes
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        s = self.settings
        path: str = scope["path"]
        rate_headers: list[tuple[bytes, bytes]] = []
        keys: tuple[str, str | None] | None = None
        if s.rate_limit and not path.startswith(self._exempt):
            decision, keys = self._count(scope)
            rate_headers = [
                (b"ratelimit-limit", str(decision.limit).encode()),
                (b"ratelimit-remaining", str(decision.remaining).encode()),
            ]
            if not decision.allowed:
                await self._refuse(scope, receive, send, decision, rate_headers)
                return

        max_body = self.body_limit(path)
        length = _content_length(scope)
        if length is not None and length > max_body:
            await self._too_large(scope, receive, send, max_body, length)
            return

        received = 0
        over = False
        started = False
        status = 0

        async def limited_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    over = True
                    raise _BodyOverLimit
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status
            if over and not started:  # our 413, whatever the app made of it
                return
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                if rate_headers:
                    message = {
                        **message,
                        "headers": [*message.get("headers", ()), *rate_headers],
                    }
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyOverLimit:
            if started:
                raise
        if over and not started:
            await self._too_large(scope, receive, send, max_body, received)
        if keys is not None and keys[1] is not None:
            self._judge_credential(scope, status, keys[1])

    def _count(self, scope: Scope) -> tuple[Decision, tuple[str, str | None]]:
        """Take a token for the request: (decision, (address key, credential key)).

        A credential the auth layer accepted before is counted on its
        account's bucket. One it has not accepted yet (a key's or a fresh
        token's first request, made up, revoked, expired) may not buy a
        budget: it takes a token from its address's budget of unverified
        requests, and one from its account's bucket if it is a token signed
        by this server (the ``sub`` claim names the account), else from a
        bucket of its own; a key's first request is counted on its account
        once the auth layer has accepted it (:meth:`_judge_credential`).
        """
        s = self.settings
        client = scope.get("client")
        address = address_key(client[0] if client else None, s.ipv6_prefix)
        found = self.credentials(scope)
        if found is None:
            key = f"ip:{address}"
            return self.limiter.take(key, s.anonymous_requests_per_minute), (key, None)
        kind, secret = found
        credential = f"cred:{_digest(secret)}"
        account = self.limiter.account_of(credential)
        if account is not None:
            decision = self.limiter.take(account, s.requests_per_minute)
            return decision, (address, credential)
        unverified = f"unverified:{address}"
        decision = self.limiter.take(unverified, s.unverified_requests_per_minute)
        if not decision.allowed:
            decision.reason = (
                f"More than {decision.limit} requests per minute from this "
                "address with credentials not (yet) accepted; retry in "
                f"{decision.retry_after} s."
            )
            return decision, (unverified, None)
        # a token we signed names its account: a freshly minted one spends the
        # account's budget from its first request (a key is known once the
        # auth layer has looked it up)
        bucket = (self._token_account(secret) if kind != "key" else None) or credential
        return self.limiter.take(bucket, s.requests_per_minute), (address, credential)

    def _token_account(self, token: str) -> str | None:
        """The account bucket of a token signed by this server, else None."""
        try:
            claims = tokens.decode(token, self.auth)
        except Unauthorized:
            return None
        return f"account:{claims['sub']}"

    def _judge_credential(self, scope: Scope, status: int, credential: str) -> None:
        """After the response: whose credential was it, if the auth layer
        accepted it?

        Not accepted when it answered 401, nor when it read the request as
        anonymous (an expired sign-in cookie); until it is, the credential's
        requests also count against the address's unverified budget.
        """
        principal = scope.get("state", {}).get("principal")
        if status == 401 or principal is None or principal.anonymous:
            self.limiter.forget(credential)
            return
        account = f"account:{principal.username}"
        if self.limiter.account_of(credential) != account:
            self.limiter.remember(credential, account)
            if principal.via == "key":  # a token's was counted on its account
                # this first request is the account's too
                self.limiter.take(account, self.settings.requests_per_minute)

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        decision: Decision,
        rate_headers: list[tuple[bytes, bytes]],
    ) -> None:
        response = ogc_exception(
            429,
            TooManyRequests.code,
            decision.reason
            or f"More than {decision.limit} requests per minute; retry in "
            f"{decision.retry_after} s.",
            headers={"Retry-After": str(decision.retry_after)},
        )
        response.raw_headers.extend(rate_headers)
        log.debug("request refused: rate limit", extra={"path": scope["path"]})
        await response(scope, receive, send)

    @staticmethod
    async def _too_large(
        scope: Scope, receive: Receive, send: Send, limit: int, size: int
    ) -> None:
        response = ogc_exception(
            413,
            PayloadTooLarge.code,
            f"The request body is larger than {limit} bytes, the limit of "
            f"{scope['path']}.",
            # the rest of the body is not read: the connection cannot be reused
            headers={"Connection": "close"},
        )
        log.debug(
            "request refused: body too large",
            extra={"path": scope["path"], "bytes": size, "limit": limit},
        )
        await response(scope, receive, send)


# ---------------------------------------------------------------------------
# login throttling


@dataclass(slots=True)
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0
    last: float = 0.0


class LoginThrottle:
    """Refuse logins of a username or an address after repeated failures.

    ``login_max_failures`` failures for one username (or
    ``login_ip_max_failures`` from one address) within
    ``login_window_seconds`` refuse further attempts for that window; each
    further refusal of the same username or address doubles the wait, up to
    ``login_max_lockout_seconds``. The login route calls :meth:`check`
    before verifying the password, then :meth:`failed` or :meth:`succeeded`.

    A success clears its username's failures but not its address's: else one
    valid account would let an address keep guessing other accounts' passwords.
    A locked username is locked for everyone (also its owner): the price of
    stopping password guessing spread over many addresses.

    Thread-safe (a synchronous login route runs in the thread pool). In
    memory, per process: like :class:`RateLimiter`, each uvicorn worker
    counts on its own.
    """

    def __init__(
        self, settings: LimitSettings | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.settings = settings or LimitSettings()
        self.clock = clock
        self._lock = threading.Lock()
        self._users: OrderedDict[str, _Failures] = OrderedDict()
        self._addresses: OrderedDict[str, _Failures] = OrderedDict()

    def _keys(
        self, username: str, client_ip: str | None
    ) -> tuple[tuple[str, str, OrderedDict[str, _Failures], int], ...]:
        s = self.settings
        # usernames are attacker-chosen and unbounded: keep a digest
        user = _digest(username.strip().casefold())
        address = address_key(client_ip, s.ipv6_prefix)
        return (
            ("username", user, self._users, s.login_max_failures),
            ("address", address, self._addresses, s.login_ip_max_failures),
        )

    def check(self, username: str, client_ip: str | None) -> None:
        """Raise :class:`TooManyRequests` if this login may not be attempted now."""
        now = self.clock()
        with self._lock:
            for kind, key, table, _ in self._keys(username, client_ip):
                entry = table.get(key)
                if entry is not None and entry.locked_until > now:
                    wait = math.ceil(entry.locked_until - now)
                    raise TooManyRequests(
                        f"Too many failed logins for this {kind}; retry in {wait} s.",
                        retry_after=wait,
                    )

    def failed(self, username: str, client_ip: str | None) -> None:
        """Record a failed login."""
        s = self.settings
        now = self.clock()
        with self._lock:
            for kind, key, table, max_failures in self._keys(username, client_ip):
                entry = table.get(key)
                if entry is None:
                    self._evict(table, now)
                    entry = table[key] = _Failures()
                else:
                    table.move_to_end(key)
                if now - entry.last > s.login_max_lockout_seconds:
                    entry.lockouts = 0  # quiet long enough: forget past refusals
                entry.last = now
                times = entry.times
                while times and now - times[0] >= s.login_window_seconds:
                    times.popleft()
                times.append(now)
                if len(times) >= max_failures:
                    lock_s = min(
                        s.login_window_seconds * 2**entry.lockouts,
                        s.login_max_lockout_seconds,
                    )
                    entry.locked_until = now + lock_s
                    entry.lockouts += 1
                    times.clear()
                    log.warning(
                        "logins refused after repeated failures",
                        extra={
                            "kind": kind,
                            "username": username[:64],
                            "client_ip": client_ip,
                            "failures": max_failures,
                            "lock_s": lock_s,
                        },
                    )

    def succeeded(self, username: str, client_ip: str | None) -> None:
        """Record a successful login: the username's failures are forgotten."""
        _, key, table, _ = self._keys(username, client_ip)[0]
        with self._lock:
            table.pop(key, None)

    def tracked(self) -> tuple[int, int]:
        """Usernames and addresses currently tracked (for tests and metrics)."""
        with self._lock:
            return len(self._users), len(self._addresses)

    def _evict(self, table: OrderedDict[str, _Failures], now: float) -> None:
        s = self.settings
        forget_after = max(s.login_window_seconds, s.login_max_lockout_seconds)
        while table:
            oldest = next(iter(table.values()))
            if oldest.locked_until > now or now - oldest.last < forget_after:
                break
            table.popitem(last=False)
        if len(table) >= s.login_max_keys:
            # NOTE: a flood of distinct usernames pushes out the oldest entries,
            # locked ones included; the address limit still holds the flooder.
            table.popitem(last=False)


def check_feature_count(n: int, settings: LimitSettings) -> None:
    """Raise :class:`PayloadTooLarge` (413) if one write carries too many features.

    413 rather than 400: the request is well formed, only larger than the
    server accepts at once; the description tells the client to send batches.

    Examples
    --------
    >>> check_feature_count(10, LimitSettings(max_features_per_write=10))
    >>> check_feature_count(11, LimitSettings(max_features_per_write=10))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gis_server.errors.PayloadTooLarge: 11 features in one request; at most 10 ...
    """
    limit = settings.max_features_per_write
    if n > limit:
        raise PayloadTooLarge(
            f"{n} features in one request; at most {limit} are accepted: send "
            f"them in batches of {limit} or fewer."
        )
