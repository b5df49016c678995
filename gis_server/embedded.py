"""The embedded PostgreSQL + PostGIS cluster used when no DATABASE_URL is set.

The server creates the cluster in a folder of the project (``initdb``),
starts and stops it with ``pg_ctl`` and connects over TCP on the loopback
address. PostgreSQL refuses to run as root; when we are root, every cluster
command runs as an unprivileged system user (``postgres`` by default) that
owns the data folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from gis_server.auth import dbsecurity
from gis_server.errors import EmbeddedClusterError
from gis_server.settings import DatabaseSettings

log = logging.getLogger("gis_server.embedded")

#: Settings written into postgresql.conf of a new cluster. JIT and parallel
#: workers made per-tile SQL slower, not faster, in measurements (PEERS.md /
#: issue 3), so both are off for this workload.
CLUSTER_CONF = {
    "unix_socket_directories": "''",
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
    "shared_buffers": "'512MB'",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    "logging_collector": "off",
    "log_min_duration_statement": "2000",
}


@dataclass
class ClusterStatus:
    initialised: bool
    running: bool
    pid: int | None
    data_dir: Path
    url: str


def find_bindir() -> Path:
    """The folder of ``initdb`` / ``pg_ctl``, newest PostgreSQL first."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: (
            int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0
        ),
        reverse=True,
    )
    if candidates:
        return candidates[0].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise EmbeddedClusterError(
        "PostgreSQL server binaries not found: install them "
        "(Debian/Ubuntu: `apt-get install postgresql postgresql-15-postgis-3`) "
        "or set DATABASE_URL to an existing PostGIS database"
    )


def server_major(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if not match:
        raise EmbeddedClusterError(f"cannot read the PostgreSQL version from {out!r}")
    return int(match.group(1))


def postgis_installed(bindir: Path, major: int) -> bool:
    share_dirs = [Path(f"/usr/share/postgresql/{major}"), bindir.parent / "share"]
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        out = subprocess.run(
            [str(pg_config), "--sharedir"], capture_output=True, text=True
        )
        if out.returncode == 0:
            share_dirs.insert(0, Path(out.stdout.strip()))
    return any((d / "extension" / "postgis.control").exists() for d in share_dirs)


def ensure_postgis(settings: DatabaseSettings, bindir: Path) -> None:
    """Install PostGIS when missing and allowed, else say what to install."""
    major = server_major(bindir)
    if postgis_installed(bindir, major):
        return
    package = f"postgresql-{major}-postgis-3"
    can_install = (
        settings.install_packages and os.geteuid() == 0 and shutil.which("apt-get")
    )
    if not can_install:
        raise EmbeddedClusterError(
            f"PostGIS is not installed for PostgreSQL {major}: "
            f"run `sudo apt-get install {package}` (or set DATABASE_URL)"
        )
    log.info("installing PostGIS", extra={"package": package})
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", package],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        result = subprocess.run(
            ["apt-get", "install", "-y", "-q", package],
            env=env,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0 or not postgis_installed(bindir, major):
        raise EmbeddedClusterError(
            f"could not install {package}: {result.stderr.strip()[-300:]}"
        )


class EmbeddedCluster:
    """One PostgreSQL cluster in a data folder, managed with ``pg_ctl``."""

    def __init__(self, settings: DatabaseSettings, *, fsync: bool = True) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir).absolute()
        self.fsync = fsync
        self._bindir: Path | None = None

    # -- plumbing ---------------------------------------------------------

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def _cmd(self, *args: str) -> list[str]:
        if self.as_root:
            return ["runuser", "-u", self.settings.os_user, "--", *args]
        return list(args)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = self._cmd(*args)
        log.debug("running %s", " ".join(cmd))
        result = subprocess.run(cmd, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise EmbeddedClusterError(
                f"{Path(args[0]).name} failed: "
                f"{(result.stderr or result.stdout).strip()[-400:]}"
            )
        return result

    def _owner_can_reach(self, path: Path) -> bool:
        if not self.as_root:
            return True
        probe = subprocess.run(
            ["runuser", "-u", self.settings.os_user, "--", "test", "-w", str(path)],
            capture_output=True,
        )
        return probe.returncode == 0

    def _prepare_dir(self) -> None:
        """Create the data folder, owned by the cluster's user when we are root.

        When the project lives where that user cannot go (under /root, say),
        the cluster is kept under /var/lib/gis-server and linked from the
        project folder, so the documented location still holds.
        """
        parent = self.data_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        if not self.as_root:
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            return
        try:
            import pwd

            pw = pwd.getpwnam(self.settings.os_user)
        except KeyError:
            raise EmbeddedClusterError(
                f"running as root needs a system user {self.settings.os_user!r} to own "
                "the cluster (Debian's postgresql package creates one); create it or "
                "set GIS_DB_OS_USER"
            ) from None
        if self.data_dir.is_symlink():
            target = self.data_dir.resolve()
            target.mkdir(parents=True, exist_ok=True)
            os.chown(target, pw.pw_uid, pw.pw_gid)
            return
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        if not self._owner_can_reach(self.data_dir):
            digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:12]
            target = Path("/var/lib/gis-server") / digest / "pgdata"
            log.warning(
                "user %s cannot reach %s; keeping the cluster in %s (linked)",
                self.settings.os_user,
                self.data_dir,
                target,
            )
            target.mkdir(parents=True, exist_ok=True)
            for p in (target.parent.parent, target.parent, target):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(target, 0o700)
            self.data_dir.rmdir()
            self.data_dir.symlink_to(target)

    @property
    def _pgdata(self) -> Path:
        return self.data_dir.resolve()

    # -- lifecycle --------------------------------------------------------

    @property
    def initialised(self) -> bool:
        return (self._pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster (``initdb``) if it does not exist yet."""
        if self.initialised:
            return
        ensure_postgis(self.settings, self.bindir)
        self._prepare_dir()
        log.info("creating embedded cluster", extra={"data_dir": str(self._pgdata)})
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self._pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        )
        conf = dict(CLUSTER_CONF)
        if not self.fsync:
            conf.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        lines = "".join(f"{k} = {v}\n" for k, v in conf.items())
        conf_file = self._pgdata / "postgresql.conf"
        with conf_file.open("a") as fh:
            fh.write("\n# written by gis-server\n" + lines)

    def status(self) -> ClusterStatus:
        pid = None
        running = False
        if self.initialised:
            result = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self._pgdata),
                "status",
                check=False,
            )
            running = result.returncode == 0
            match = re.search(r"PID: (\d+)", result.stdout)
            pid = int(match.group(1)) if match else None
        return ClusterStatus(
            self.initialised, running, pid, self.data_dir, self.settings.effective_url()
        )

    def start(self) -> ClusterStatus:
        """Create the cluster if needed, start it and make sure the database exists."""
        self.init()
        if not self.status().running:
            self._check_port_free()
            log.info(
                "starting embedded cluster",
                extra={"data_dir": str(self._pgdata), "port": self.settings.port},
            )
            result = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self._pgdata),
                "-w",
                "-t",
                "120",
                "-l",
                str(self._pgdata / "server.log"),
                # Address and port come from the settings at every start, so
                # changing GIS_DB_PORT needs no edit of postgresql.conf.
                "-o",
                f"-p {int(self.settings.port)} -h {self.settings.host}",
                "start",
                check=False,
            )
            if result.returncode != 0:
                raise EmbeddedClusterError(
                    f"the embedded cluster did not start: {self._log_reason()} "
                    f"(log: {self._pgdata / 'server.log'})"
                )
        self._wait_ready()
        self._ensure_database()
        return self.status()

    def _check_port_free(self) -> None:
        import socket

        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.settings.host, self.settings.port))
            except OSError:
                raise EmbeddedClusterError(
                    f"port {self.settings.port} on {self.settings.host} is taken by "
                    "another program: choose another with GIS_DB_PORT"
                ) from None

    def _log_reason(self) -> str:
        try:
            lines = (
                (self._pgdata / "server.log").read_text(errors="replace").splitlines()
            )
        except OSError:
            return "no server log"
        fatal = [ln for ln in lines if "FATAL" in ln or "PANIC" in ln]
        return (fatal or lines or ["no server log"])[-1].strip()

    def stop(self) -> None:
        if self.initialised and self.status().running:
            log.info("stopping embedded cluster", extra={"data_dir": str(self._pgdata)})
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self._pgdata),
                "-w",
                "-m",
                "fast",
                "stop",
            )

    def destroy(self) -> None:
        """Stop the cluster and delete its folder (tests)."""
        self.stop()
        target = self._pgdata
        if self.data_dir.is_symlink():
            self.data_dir.unlink()
        shutil.rmtree(target, ignore_errors=True)

    # -- database ---------------------------------------------------------

    def _admin_connect(self, dbname: str = "postgres"):
        return psycopg2.connect(
            host=self.settings.host,
            port=self.settings.port,
            user="postgres",
            dbname=dbname,
            connect_timeout=5,
        )

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._admin_connect().close()
                return
            except psycopg2.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise EmbeddedClusterError(
                        f"embedded cluster did not accept connections: {exc}"
                    ) from exc
                time.sleep(0.2)

    def _ensure_database(self) -> None:
        name, user = self.settings.name, self.settings.user
        conn = self._admin_connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE ROLE "{user}" LOGIN')
            # row-level security: migrations create the scoped roles
            # (gis_server.auth.dbsecurity) and grant them to this owner
            cur.execute(f'ALTER ROLE "{user}" CREATEROLE')
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}" OWNER "{user}"')
        conn.close()
        conn = self._admin_connect(name)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            dbsecurity.mark_leakproof(cur)  # scoped callers keep spatial indexes
        conn.close()
