"""A thread that LISTENs on a PostgreSQL channel and keeps state current.

Subclasses name the channel and say what to read once connected
(:meth:`Listener.connected`, called right after ``LISTEN`` so that no change
falls between the two, and again after every reconnection) and what to do
with the payloads of a notification (:meth:`Listener.notified`). The thread
reconnects after ``reconnect_s`` when the connection is lost and probes an
idle connection now and then, so a silently dead server is noticed.
"""

from __future__ import annotations

import logging
import select
import threading
import time

import psycopg2
import psycopg2.extensions

#: seconds a listener connection may stay silent before a probe query
PROBE_AFTER_S = 15.0


class Listener:
    """LISTEN on :attr:`channel` in a daemon thread (see the module doc)."""

    channel: str
    thread_name: str
    #: how the connection shows in ``pg_stat_activity``
    application_name: str
    #: what the warning of a lost connection says after "lost its connection; "
    lost_message: str
    log: logging.Logger

    def __init__(self, dsn: str, *, reconnect_s: float = 1.0) -> None:
        self._dsn = dsn
        self._reconnect_s = reconnect_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = False

    @property
    def live(self) -> bool:
        """Whether changes are being heard."""
        return self._live

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=self.thread_name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._live = False

    def wait_live(self, timeout: float = 5.0) -> bool:
        """Block until the listener is connected (tests, start-up)."""
        deadline = time.monotonic() + timeout
        while not self._live and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._live

    # -- what subclasses say ----------------------------------------------------

    def connected(self, cur) -> None:
        """Read the state after ``LISTEN`` (on connecting and reconnecting)."""
        raise NotImplementedError

    def notified(self, cur, payloads: set[str]) -> None:
        """Act on the payloads of the notifications that arrived together."""
        raise NotImplementedError

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = None
            try:
                conn = psycopg2.connect(
                    self._dsn, connect_timeout=5, application_name=self.application_name
                )
                conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {self.channel}")
                    self.connected(cur)
                    self._live = True
                    self.log.info("listening", extra={"channel": self.channel})
                    self._listen(conn, cur)
            except psycopg2.Error as exc:
                if self._live or conn is not None:
                    self.log.warning(
                        f"{self.thread_name} lost its connection; {self.lost_message}",
                        extra={"channel": self.channel, "error": type(exc).__name__},
                    )
            finally:
                self._live = False
                if conn is not None and not conn.closed:
                    conn.close()
            self._stop.wait(self._reconnect_s)

    def _listen(self, conn, cur) -> None:
        idle = 0.0
        while not self._stop.is_set():
            ready, _, _ = select.select([conn], [], [], 1.0)
            if not ready:
                idle += 1.0
                if idle >= PROBE_AFTER_S:
                    cur.execute("SELECT 1")
                    idle = 0.0
                continue
            conn.poll()
            payloads = {n.payload for n in conn.notifies}
            conn.notifies.clear()
            if payloads:
                self.notified(cur, payloads)
