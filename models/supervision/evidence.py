"""Evidence files of rectifications: stored outside the database, by checksum.

A photo or PDF a responsible party replies with is stored once under
``LoopSettings.evidence_dir`` at ``<first two hex digits>/<sha256>``: the
file name a client sends is kept as metadata only and never touches the file
system, so no name can escape the folder. The type is decided by the file's
first bytes (JPEG, PNG, WebP, PDF), not by its name or the declared type.
Reading a file back (:func:`read_evidence`) reads it once and re-computes the
checksum of the very bytes it returns: a file changed on disk is an error,
not evidence, and what is served is what was checked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Table,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert

from gis_server.errors import (
    GisServerError,
    InvalidParameter,
    NotFound,
    PayloadTooLarge,
)
from layers import metadata
from models.supervision.settings import LoopSettings

log = logging.getLogger("gis_server.supervision.evidence")

supervision_evidence = Table(
    "supervision_evidence",
    metadata,
    Column("sha256", Text, primary_key=True),
    #: the name the file was first uploaded under (metadata only)
    Column("name", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", Text, nullable=False),
    Column(
        "stored_at", DateTime(timezone=True), nullable=False, server_default=func.now()
    ),
    #: relative to LoopSettings.evidence_dir
    Column("path", Text, nullable=False),
    #: the account that stored it first (the scope setting of its
    #: transaction; NULL for the server's own work): until an event or a
    #: record cites the file, only they see its row (row-level security)
    Column(
        "uploaded_by",
        Text,
        server_default=text("nullif(current_setting('gis.username', true), '')"),
    ),
    comment="Evidence files of warning rectifications (stored outside the DB)",
)

#: Types accepted as evidence, by their leading bytes.
CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp", "application/pdf")
_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


class EvidenceCorrupt(GisServerError):
    """A stored evidence file no longer matches its checksum."""

    code = "EvidenceCorrupt"


@dataclass(frozen=True)
class EvidenceRef:
    """One stored evidence file, as a rectification event lists it."""

    sha256: str
    name: str
    size: int
    content_type: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sniff_content_type(data: bytes) -> str | None:
    """The evidence type of ``data`` from its first bytes, or None.

    >>> sniff_content_type(b"%PDF-1.7 ...")
    'application/pdf'
    >>> sniff_content_type(b"GIF89a") is None
    True
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def clean_name(name: str | None) -> str:
    """A display name: the last path component, printable, at most 200 chars.

    >>> clean_name("../../etc/passwd")
    'passwd'
    >>> clean_name("C:\\\\photos\\\\现场 1.jpg")
    '现场 1.jpg'
    """
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(
        c
        for c in unicodedata.normalize("NFC", base)
        if unicodedata.category(c)[0] != "C"
    ).strip()
    if base in ("", ".", ".."):
        base = "evidence"
    return base[:200]


def is_sha256(value: str | None) -> bool:
    """Whether ``value`` is a SHA-256 as stored here (64 lowercase hex digits).

    >>> is_sha256("ab" * 32), is_sha256("AB" * 32), is_sha256("../x")
    (True, False, False)
    """
    return bool(_SHA256.match(value or ""))


def relative_path(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


def _digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def store_evidence(
    conn: Connection,
    data: bytes,
    name: str | None,
    content_type: str | None,
    settings: LoopSettings,
) -> EvidenceRef:
    """Store one evidence file (once per content) and record it in ``conn``.

    Raises :class:`PayloadTooLarge` for a file over
    ``settings.evidence_max_bytes`` (a caller reading an upload needs no more
    than that many bytes plus one to know), :class:`InvalidParameter` for an
    empty file, a type other than JPEG / PNG / WebP / PDF, or a declared type
    the content contradicts.
    """
    size = len(data)
    if size == 0:
        raise InvalidParameter("evidence file is empty")
    if size > settings.evidence_max_bytes:
        raise PayloadTooLarge(
            f"evidence file {clean_name(name)!r} is over the limit of "
            f"{settings.evidence_max_bytes:,} bytes per file "
            "(GIS_LOOP_EVIDENCE_MAX_BYTES)"
        )
    sniffed = sniff_content_type(data)
    if sniffed is None:
        raise InvalidParameter(
            f"evidence must be one of {', '.join(CONTENT_TYPES)}; "
            "the content is none of them"
        )
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared == "image/jpg":
        declared = "image/jpeg"
    if declared not in _GENERIC_TYPES and declared != sniffed:
        raise InvalidParameter(
            f"evidence declared as {declared} but its content is {sniffed}"
        )
    sha = hashlib.sha256(data).hexdigest()
    rel = relative_path(sha)
    # NOTE: the file is written before the caller's transaction commits; if
    # it rolls back, the file stays without its row. Harmless (content
    # addressed: storing it again re-registers the same file) but not swept:
    # a cleanup of unregistered files is not written yet.
    target = settings.evidence_dir / rel
    if target.exists() and _digest_file(target) == sha:
        pass  # already stored (content addressed)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    clean = clean_name(name)
    conn.execute(
        insert(supervision_evidence)
        .values(sha256=sha, name=clean, size=size, content_type=sniffed, path=rel)
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    log.info(
        "evidence stored",
        extra={"sha256": sha, "size": size, "content_type": sniffed},
    )
    return EvidenceRef(sha256=sha, name=clean, size=size, content_type=sniffed)


def known_evidence(conn: Connection, hashes: list[str]) -> set[str]:
    """Which of ``hashes`` are recorded in ``supervision_evidence``."""
    if not hashes:
        return set()
    rows = conn.execute(
        select(supervision_evidence.c.sha256).where(
            supervision_evidence.c.sha256.in_(hashes)
        )
    )
    return set(rows.scalars())


def read_evidence(sha256: str, settings: LoopSettings) -> bytes:
    """The content of a stored evidence file, checked against its checksum.

    The file is read once; the checksum is computed over the bytes returned,
    so nothing can change between the check and the use (evidence files are
    at most ``evidence_max_bytes``: they are held in memory). Raises
    :class:`NotFound` for an unknown or malformed hash and
    :class:`EvidenceCorrupt` when the file on disk no longer matches it.
    """
    if not is_sha256(sha256):
        raise NotFound(f"no evidence {sha256!r}")
    path = settings.evidence_dir / relative_path(sha256)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise NotFound(f"no evidence {sha256}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        log.error(
            "evidence file does not match its checksum",
            extra={"sha256": sha256, "actual": actual, "path": str(path)},
        )
        raise EvidenceCorrupt(f"evidence {sha256} was changed on disk")
    return data


def read_upload(fh: Any, settings: LoopSettings) -> bytes:
    """At most ``evidence_max_bytes + 1`` bytes of an uploaded file object:
    enough for :func:`store_evidence` to refuse an oversized one without
    reading it whole."""
    return fh.read(settings.evidence_max_bytes + 1)
