"""Authentication settings (``GIS_AUTH_*``)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gis_server.settings import PROJECT_ROOT


class AuthSettings(BaseSettings):
    """Who may call the server without signing in, and how sign-in works."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_AUTH_", env_file=".env", extra="ignore"
    )

    anonymous: Literal["off", "read"] = Field(
        default="off",
        description=(
            "`read` lets callers without credentials read every layer (for "
            "demos); `off` (default) requires an account except for the layers "
            "in `anonymous_layers`."
        ),
    )
    anonymous_layers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Layers anyone may read without signing in, comma-separated "
            "(e.g. `districts,rivers`)."
        ),
    )
    token_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="Lifetime of a sign-in token."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key signing the tokens. Unset: a random key is created once in "
            "`secret_file` (so tokens survive a restart); set it when several "
            "servers share the sign-in."
        ),
    )
    secret_file: Path = Field(default=PROJECT_ROOT / "var" / "auth-secret")
    issuer: str = Field(default="gis-server", description="`iss` claim of tokens.")
    api_key_header: str = Field(default="X-API-Key")
    api_key_query: str = Field(
        default="api_key",
        description=(
            "Query parameter carrying an API key, for clients that cannot set "
            "headers (QGIS and GDAL can do one or the other)."
        ),
    )
    lookup_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description=(
            "How long a verified key or token's account is remembered: a "
            "disabled account, a revoked key, and the tokens issued before a "
            "password change stop working within this time (per process)."
        ),
    )

    @field_validator("anonymous_layers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def signing_key(self) -> str:
        """The token signing key (created in ``secret_file`` on first use)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.secret_file
        if not path.exists():
            # created once, atomically: several workers starting together must
            # agree on one key (the first link wins, the others read it)
            path.parent.mkdir(parents=True, exist_ok=True)
            # mkstemp opens the file 0600 (O_CREAT | O_EXCL): the key is never
            # readable by others, not even between writing and a chmod
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            tmp = Path(name)
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(48))
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip()
