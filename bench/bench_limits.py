"""Cost of LimitMiddleware per request, and memory per tracked client.

Run: ``.venv/bin/python bench/bench_limits.py``. Calls the middleware
directly around a trivial ASGI app (no server, no network), so the figures
are the middleware's own cost. The app plays the auth middleware's part:
it accepts every credential, as the account ``user-<n>`` (a key or token
accepted once is "verified": its later requests are counted on its
account's budget). "A token's first" is the request of a freshly signed
token, new to the limiter (which checks its signature to learn its account).
"""

from __future__ import annotations

import asyncio
import inspect
import time
import tracemalloc

import jwt

from gis_server.auth import tokens
from gis_server.auth.principal import Principal
from gis_server.auth.settings import AuthSettings
from gis_server.limits import LimitMiddleware, LimitSettings, RateLimiter

N = 50_000
KEYS = 1000  # distinct credentials
ACCOUNTS = 50  # accounts owning them
REPEAT = 5


async def trivial(scope, receive, send) -> None:
    await receive()
    n = scope.get("account")
    if n is not None:  # as AuthMiddleware leaves it
        scope.setdefault("state", {})["principal"] = Principal(f"user-{n}", "analyst")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


AUTH = AuthSettings(secret_key="bench-limits-signing-key-0123456789abcdef")
_NOW = int(time.time())
#: distinct signed tokens (issued a second apart), all new to the limiter
FRESH = [
    jwt.encode(
        {
            "sub": f"user-{n % ACCOUNTS}",
            "role": "analyst",
            "ver": 0,
            "iss": AUTH.issuer,
            "iat": _NOW - n,
            "exp": _NOW + 3600,
        },
        AUTH.signing_key(),
        algorithm=tokens.ALGORITHM,
    )
    for n in range(KEYS)
]


def scope(i: int, kind: str | None) -> dict:
    headers = [(b"host", b"x"), (b"accept", b"*/*")]
    k = i % KEYS
    if kind == "key":
        headers.append((b"x-api-key", f"gis_key-{k}".encode()))
    elif kind == "bearer":
        headers.append((b"authorization", f"Bearer eyJ.token-{k}.sig".encode()))
    elif kind == "fresh":
        headers.append((b"authorization", f"Bearer {FRESH[k]}".encode()))
    return {
        "type": "http",
        "method": "GET",
        "path": "/collections/buildings/tiles/14/1/2",
        "query_string": b"",
        "headers": headers,
        "client": (f"10.0.{i % 250}.{i % 200}", 1234),
        "account": None if kind is None else k % ACCOUNTS,
    }


async def run(app, kind: str | None, n: int = N, warm: bool = True) -> float:
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    scopes = [scope(i, kind) for i in range(n)]
    for s in scopes[:KEYS] if warm else ():  # every credential verified once
        await app(dict(s), receive, send)
    best = float("inf")
    for _ in range(REPEAT):  # the best of a few: a shared machine is noisy
        start = time.perf_counter()
        for s in scopes:
            await app(dict(s), receive, send)
        best = min(best, time.perf_counter() - start)
        if not warm:  # once: the second round would find them known
            break
    return best / n * 1e6


def limited(limits: LimitSettings) -> LimitMiddleware:
    if "auth" in inspect.signature(LimitMiddleware).parameters:
        return LimitMiddleware(trivial, limits, auth=AUTH)
    return LimitMiddleware(trivial, limits)  # before the limiter knew accounts


async def main() -> None:
    limits = LimitSettings(
        requests_per_minute=10**9,
        anonymous_requests_per_minute=10**9,
        unverified_requests_per_minute=10**9,
    )
    base = await run(trivial, None)
    anon = await run(limited(limits), None)
    keyed = await run(limited(limits), "key")
    bearer = await run(limited(limits), "bearer")
    fresh = await run(limited(limits), "fresh", n=KEYS, warm=False)
    print(f"bare app            {base:6.2f} us/request")
    print(f"+ limits, by IP     {anon - base:6.2f} us/request overhead")
    print(f"+ limits, key       {keyed - base:6.2f} us/request overhead")
    print(f"+ limits, token     {bearer - base:6.2f} us/request overhead")
    print(f"+ a token's first   {fresh - base:6.2f} us/request overhead")

    limiter = RateLimiter(max_keys=10**6)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(100_000):
        limiter.take(f"key:{i:024x}", 600)
    after = tracemalloc.get_traced_memory()[0]
    print(
        f"memory per client {(after - before) / 100_000:6.0f} bytes "
        f"(default max_keys 50,000: ~{(after - before) / 2 / 2**20:.0f} MiB)"
    )


if __name__ == "__main__":
    asyncio.run(main())
