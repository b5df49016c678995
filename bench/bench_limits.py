"""Cost of LimitMiddleware per request, and memory per tracked client.

Run: ``.venv/bin/python bench/bench_limits.py``. Calls the middleware
directly around a trivial ASGI app (no server, no network), so the figures
are the middleware's own cost.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc

from gis_server.limits import LimitMiddleware, LimitSettings, RateLimiter

N = 50_000


async def trivial(scope, receive, send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def scope(i: int, key: bool) -> dict:
    headers = [(b"host", b"x"), (b"accept", b"*/*")]
    if key:
        headers.append((b"x-api-key", f"key-{i % 1000}".encode()))
    return {
        "type": "http",
        "method": "GET",
        "path": "/collections/buildings/tiles/14/1/2",
        "query_string": b"",
        "headers": headers,
        "client": (f"10.0.{i % 250}.{i % 200}", 1234),
    }


async def run(app, key: bool) -> float:
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    scopes = [scope(i, key) for i in range(N)]
    start = time.perf_counter()
    for s in scopes:
        await app(s, receive, send)
    return (time.perf_counter() - start) / N * 1e6


async def main() -> None:
    limits = LimitSettings(
        requests_per_minute=10**9, anonymous_requests_per_minute=10**9
    )
    base = await run(trivial, False)
    anon = await run(LimitMiddleware(trivial, limits), False)
    keyed = await run(LimitMiddleware(trivial, limits), True)
    print(f"bare app          {base:6.2f} us/request")
    print(f"+ limits, by IP   {anon - base:6.2f} us/request overhead")
    print(f"+ limits, by key  {keyed - base:6.2f} us/request overhead")

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
