"""Redaction, the one filter between a secret and anything written or shown: failure reasons, console lines,
the manifest's command and failure counts, every reply text kept. A process registers the secrets it reads (a
teacher's key, a password inside an endpoint URL); ``redact`` then hides them and any URL credentials, wherever
they appear; ``public_url`` is an endpoint as it may be shown."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

_SECRETS: set[str] = set()
_MIN_LEN = 4  # shorter values would blank out ordinary words
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@?#]+@")
_SECRET_QUERY = re.compile(
    r"(?i)(?P<name>[?&](?:api[-_]?key|key|token|access[-_]?token|secret|sig|signature|password|passwd|pwd|auth)=)"
    r"[^&\s#]*"
)


def add_secret(value: str | None) -> None:
    """Hide ``value`` from everything this process writes or prints from now on."""
    if value and len(value) >= _MIN_LEN:
        _SECRETS.add(value)


def add_url_secrets(url: str | None) -> None:
    """Register the password and every query value of an endpoint URL (they may carry keys)."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        add_secret(parts.password)
        for _, value in parse_qsl(parts.query):
            add_secret(value)
    except ValueError:
        return


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` and URL credentials (``user:pass@``, key-like
    query values) masked."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<name>***", text)


def public_url(url: str | None) -> str:
    """An endpoint URL as robustgen shows and records it: without user:password or query string (which may carry
    keys); None is the public OpenAI endpoint."""
    if not url:
        return "https://api.openai.com/v1"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
