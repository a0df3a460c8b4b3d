"""Who may call what: bearer tokens with read and write roles, HTTP Basic, and the read-only switch.

``headwater.serving.api``: with ``read-tokens`` set, every endpoint but the public ones (``/ready``,
``/metrics`` and the pages that carry no data) needs a read or a write token; with ``write-tokens``
set, a write needs a write token (a read token gets 403); with ``user-name`` and ``password`` set,
HTTP Basic with them may read and write, and reads need credentials. Without a valid credential
where one is needed the answer is 401 with ``WWW-Authenticate``. ``read-only = true`` answers 403
on every write, whoever asks. Which endpoints write is what each declares
(:func:`serving_layer.operations.operation`).

Tokens are compared in constant time against every configured token, and never logged: only the
outcome and the role appear in an error message.

>>> access = Access(read_tokens=["r1"], write_tokens=["w1"])
>>> access.role("Bearer r1"), access.role("Bearer w1"), access.role("Bearer nope"), access.role(None)
('read', 'write', None, None)
>>> access.check(role="read", writes=True).status
403
"""
from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Sequence

from flask import Flask, current_app, jsonify, request

from headwater.config import Config
from serving_layer.errors import ApiError
from serving_layer.operations import described_or_default, is_public

log = logging.getLogger(__name__)
ACCESS = "headwater.access"


def _matches(given: bytes, allowed: Sequence[bytes]) -> bool:
    # every candidate is compared, so the time taken does not tell which one (or how much) matched
    return [hmac.compare_digest(given, candidate) for candidate in allowed].count(True) > 0


class Access:
    """The configured credentials and roles; :meth:`check` is the one decision."""

    def __init__(self, read_tokens: Sequence[str] = (), write_tokens: Sequence[str] = (),
                 user_name: str | None = None, password: str | None = None, read_only: bool = False):
        self._read = [t.encode() for t in read_tokens]
        self._write = [t.encode() for t in write_tokens]
        self._basic = (f"{user_name}:{password}".encode() if user_name is not None and password is not None
                       else None)
        self.read_only = read_only

    @classmethod
    def from_config(cls, config: Config) -> Access:
        api = "headwater.serving.api"
        access = cls(config.get(f"{api}.read-tokens"), config.get(f"{api}.write-tokens"),
                     config.get(f"{api}.user-name"), config.get(f"{api}.password"), config.get(f"{api}.read-only"))
        if (config.get(f"{api}.user-name") is None) != (config.get(f"{api}.password") is None):
            from headwater.config import ConfigError

            raise ConfigError(f"{api}.user-name and {api}.password must be set together "
                              f"(in {config.source_of(f'{api}.user-name')})")
        if access._read and not access._write:
            log.warning("%s.read-tokens is set but write-tokens is not: read tokens may also write "
                        "(set write-tokens, or read-only = true)", api)
        return access

    @property
    def reads_need_credentials(self) -> bool:
        return bool(self._read) or self._basic is not None

    @property
    def writes_need_credentials(self) -> bool:
        return self.reads_need_credentials or bool(self._write)

    def role(self, authorization: str | None) -> str | None:
        """'write', 'read' or None for an ``Authorization`` header value."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        given = credentials.strip().encode("utf-8", "replace")
        if scheme.lower() == "bearer" and given:
            if _matches(given, self._write):
                return "write"
            if _matches(given, self._read):
                # with no write tokens configured, writes are not restricted to them
                return "read" if self._write else "write"
        elif scheme.lower() == "basic" and self._basic is not None:
            try:
                decoded = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                return None
            return "write" if _matches(decoded, [self._basic]) else None
        return None

    def check(self, role: str | None, writes: bool) -> ApiError | None:
        """The refusal for a request with ``role`` to a read or write endpoint, or None to let it through."""
        needed = self.writes_need_credentials if writes else self.reads_need_credentials
        if needed and role is None:
            return ApiError(401, "this endpoint needs credentials: Authorization: Bearer <token>"
                                 + (" or HTTP Basic" if self._basic is not None else ""))
        if writes and self._write and role != "write":
            return ApiError(403, "this endpoint writes: it needs a write token")
        if writes and self.read_only:
            return ApiError(403, "this serving layer is read-only (headwater.serving.api.read-only)")
        return None

    # --- what the OpenAPI document says -------------------------------------------------------------
    def security_schemes(self) -> dict[str, dict]:
        schemes = {}
        if self._read or self._write:
            schemes["bearerAuth"] = {"type": "http", "scheme": "bearer"}
        if self._basic is not None:
            schemes["basicAuth"] = {"type": "http", "scheme": "basic"}
        return schemes

    def security(self, writes: bool) -> list[dict]:
        needed = self.writes_need_credentials if writes else self.reads_need_credentials
        return [{name: []} for name in self.security_schemes()] if needed else []

    def statuses(self, writes: bool) -> set[int]:
        """The 401/403 answers an endpoint can give under this configuration."""
        statuses = set()
        if self.writes_need_credentials if writes else self.reads_need_credentials:
            statuses.add(401)
        if writes and (self._write or self.read_only):
            statuses.add(403)
        return statuses

    def challenge(self) -> str:
        return ", ".join(['Bearer realm="headwater"'] + (['Basic realm="headwater"'] if self._basic else []))


def _guard():
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if request.method == "OPTIONS" or is_public(request.endpoint, view):
        return None
    writes = described_or_default(view, request.method).writes
    access: Access = current_app.extensions[ACCESS]
    refusal = access.check(access.role(request.headers.get("Authorization")), writes)
    if refusal is None:
        return None
    response = jsonify(refusal.body())
    response.status_code = refusal.status
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = access.challenge()
    return response


def init_app(app: Flask, config: Config) -> None:
    app.extensions[ACCESS] = Access.from_config(config)
    app.before_request(_guard)


__all__ = ["Access", "init_app"]
