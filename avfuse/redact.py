"""Credentials out of what avfuse prints: `redact(text)` masks secrets in URLs.

Stream URLs carry credentials (`rtsp://admin:pw@cam/stream`, `srt://h:9000?passphrase=x`,
`https://h/live.m3u8?token=x`). The real URL is what a source opens; everything a person
or a log reads (source names, status messages, records, errors) goes through `redact`, so
a recording of a run can be shared without leaking the camera's password.

What is masked, with `***`:
    - the password of a URL's userinfo (`scheme://user:PASSWORD@host`); the user name stays.
      The userinfo ends at the last "@" before the first "/", "?" or "#", as FFmpeg's
      `av_url_split` (the parser that opens the URL) reads it;
    - the value of query and fragment parameters whose key names a secret (`password`,
      `token`, `key`, `passphrase`, ..., see `SECRET_KEYS`, and keys ending in one of
      `SECRET_SUFFIXES`).
Everything else, inside and outside URLs, is returned unchanged.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

#: What replaces a secret.
MASK = "***"

#: Query/fragment keys (compared lower-cased, percent-decoded) whose values are secrets.
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "pw",
        "passphrase",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "key",
        "api_key",
        "apikey",
        "secret",
        "client_secret",
        "auth",
        "authorization",
        "credentials",
        "signature",
        "sig",
    }
)

#: Key endings that also mark a secret (`stream_token`, `x-api-key`, `app_secret`...).
SECRET_SUFFIXES = ("token", "secret", "password", "passphrase", "_key", "-key", "apikey")

# A URL inside free text: a scheme, "://", then up to whitespace or a character that
# cannot be part of a URL written out (quotes and brackets that commonly surround one).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"<>`]+")
# Characters that end a sentence rather than a URL ("... at rtsp://h/x." or "'url':").
_TRAILING = ".,;:!?)]}'"


def redact(text: str | os.PathLike[str]) -> str:
    """`text` with the secrets of every URL in it replaced by `***` (see the module doc).

    Args:
        text: a URL, a path, or a message that may contain URLs.

    Returns:
        The same text, with only URL passwords and secret query values changed.
    """
    s = os.fspath(text)
    if "://" not in s:
        return s
    return _URL.sub(lambda m: _redact_url(m.group(0)), s)


def is_secret_key(key: str) -> bool:
    """True when a query parameter named `key` holds a secret."""
    k = unquote(key).strip().lower()
    return k in SECRET_KEYS or k.endswith(SECRET_SUFFIXES)


def _redact_url(url: str) -> str:
    core = url.rstrip(_TRAILING)
    tail = url[len(core) :]
    scheme, _, rest = core.partition("://")
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i >= 0:
            end = min(end, i)
    authority, after = rest[:end], rest[end:]
    at = authority.rfind("@")
    if at >= 0:
        user, colon, password = authority[:at].partition(":")
        if colon and password and password != MASK:
            authority = f"{user}:{MASK}{authority[at:]}"
    return f"{scheme}://{authority}{_redact_params(after)}{tail}"


def _redact_params(after: str) -> str:
    """Mask secret values in the query ("?...") and fragment ("#...") of a URL's tail.

    Parameters are split at "&" only (as FFmpeg reads URL options), so a value with ";"
    or "?" in it is masked whole rather than in part.
    """
    cuts = [i for i in (after.find("?"), after.find("#")) if i >= 0]
    if not cuts:
        return after
    head, rest = after[: min(cuts)], after[min(cuts) :]
    if rest.startswith("#"):
        return f"{head}#{_mask_pairs(rest[1:])}"
    query, sharp, fragment = rest[1:].partition("#")
    return f"{head}?{_mask_pairs(query)}{sharp}{_mask_pairs(fragment) if sharp else ''}"


def _mask_pairs(params: str) -> str:
    pairs = []
    for pair in params.split("&"):
        key, eq, value = pair.partition("=")
        if eq and value and value != MASK and is_secret_key(key):
            pair = f"{key}={MASK}"
        pairs.append(pair)
    return "&".join(pairs)
