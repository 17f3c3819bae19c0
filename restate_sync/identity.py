"""Request identity verification (the runtime signs every request it sends to a deployment).

When an endpoint is configured with one or more public keys, every ``/invoke/...`` and ``/discover``
request must carry a valid signature from the Restate runtime; otherwise the endpoint answers 401.

The runtime sends two headers:

* ``x-restate-signature-scheme``: ``v1`` (signed) or ``unsigned``;
* ``x-restate-jwt-v1``: a compact JWT ``b64url(header).b64url(claims).b64url(signature)`` with
  header ``{"typ": "JWT", "kid": "publickeyv1_...", "alg": "EdDSA"}`` and claims ``aud`` (the request
  path without the deployment prefix), ``exp``, ``iat``, ``nbf`` (integer seconds) and an optional
  ``sub``. The signature is Ed25519 over ``b64url(header) + "." + b64url(claims)``.

Public keys are written ``"publickeyv1_" + base58(raw 32-byte Ed25519 public key)``.

This module needs the ``cryptography`` package (``pip install 'restate-sync[identity]'``); the rest
of ``restate_sync`` does not import it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
except ImportError as exc:  # pragma: no cover - exercised only without the optional dependency
    raise ImportError(
        "request identity verification needs the 'cryptography' package; "
        "install it with: pip install 'restate-sync[identity]'"
    ) from exc

__all__ = [
    "JWT_HEADER",
    "KEY_PREFIX",
    "SCHEME_HEADER",
    "IdentityError",
    "IdentityVerifier",
    "normalise_path",
    "parse_public_key",
    "sign_request_token",
]

KEY_PREFIX = "publickeyv1_"
SCHEME_HEADER = "x-restate-signature-scheme"
JWT_HEADER = "x-restate-jwt-v1"

_SCHEME_V1 = "v1"
_SCHEME_UNSIGNED = "unsigned"
_ALG = "EdDSA"

_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: value for value, char in enumerate(_BASE58_ALPHABET)}

# Unpadded base64url (padding is tolerated, but nothing after it).
_B64URL_SEGMENT = re.compile(r"[A-Za-z0-9_-]*={0,2}")

_MAX_ECHO = 120  # longest claim/header value quoted back in an error message
#: Longest JWT accepted, in characters. The runtime's tokens are a few hundred bytes; a longer one
#: is refused before anything of it is decoded.
MAX_TOKEN_LENGTH = 4096


class IdentityError(Exception):
    """A request failed identity verification; the endpoint answers it with 401."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------------------- keys


def _base58_decode(text: str) -> bytes:
    value = 0
    for position, char in enumerate(text):
        digit = _BASE58_INDEX.get(char)
        if digit is None:
            raise ValueError(f"invalid base58 character {char!r} at position {position}")
        value = value * 58 + digit
    # Every leading '1' stands for one leading zero byte.
    leading_zeros = len(text) - len(text.lstrip("1"))
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return b"\x00" * leading_zeros + body


def _base58_encode(data: bytes) -> str:
    value = int.from_bytes(data, "big")
    digits = []
    while value:
        value, digit = divmod(value, 58)
        digits.append(_BASE58_ALPHABET[digit])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + "".join(reversed(digits))


def format_public_key(public_key: Ed25519PublicKey) -> str:
    """The ``publickeyv1_<base58>`` form of an Ed25519 public key (what restate-server prints)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return KEY_PREFIX + _base58_encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def parse_public_key(key: str) -> Ed25519PublicKey:
    """Parse a ``publickeyv1_<base58>`` string into an Ed25519 public key.

    Raises ``ValueError`` (a configuration error) when the prefix is wrong, the text after it is not
    base58 (Bitcoin alphabet), or it does not decode to exactly 32 bytes.
    """
    if not isinstance(key, str):
        raise ValueError(f"identity key must be a string, got {type(key).__name__}")
    key = key.strip()
    shown = _echo(key)
    if not key.startswith(KEY_PREFIX):
        raise ValueError(f"invalid identity key {shown}: it must start with {KEY_PREFIX!r}")
    encoded = key[len(KEY_PREFIX) :]
    try:
        raw = _base58_decode(encoded)
    except ValueError as exc:
        raise ValueError(f"invalid identity key {shown}: {exc}") from None
    if len(raw) != 32:
        raise ValueError(
            f"invalid identity key {shown}: it decodes to {len(raw)} bytes, "
            "but an Ed25519 public key is 32 bytes"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


# ---------------------------------------------------------------------------------------- paths


def normalise_path(path: str) -> str:
    """The audience the runtime signs for a request path (docs/protocol.md, "Request identity").

    The runtime signs the path without the deployment prefix: ``/foo/invoke/A/b`` → ``/invoke/A/b``,
    ``/foo/discover`` → ``/discover``; any other path is used unchanged. A query string is dropped.
    """
    path = path.split("?", 1)[0]
    slashes = [index for index, char in enumerate(path) if char == "/"]
    if len(slashes) >= 3:
        start, end = slashes[-3], slashes[-2]
        if path[start:end] == "/invoke":
            return path[start:]
    if slashes and path[slashes[-1] :] == "/discover":
        return "/discover"
    return path


# ---------------------------------------------------------------------------------------- JWT


def _b64url_decode(segment: str, what: str) -> bytes:
    if not _B64URL_SEGMENT.fullmatch(segment):
        raise IdentityError(f"malformed JWT: the {what} is not base64url")
    unpadded = segment.rstrip("=")
    if len(unpadded) % 4 == 1:
        raise IdentityError(f"malformed JWT: the {what} is not base64url (bad length)")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError):
        raise IdentityError(f"malformed JWT: the {what} is not base64url") from None


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: nested too deeply; ValueError also covers integers of too many digits
        raise IdentityError(f"malformed JWT: the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise IdentityError(f"malformed JWT: the {what} is not a JSON object")
    return value


def _echo(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 3] + "..."


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    if name not in claims:
        raise IdentityError(f"JWT is missing the required claim {name!r}")
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise IdentityError(f"JWT claim {name!r} must be an integer (seconds), got {_echo(value)}")
    return value


class IdentityVerifier:
    """Checks that requests were signed by a Restate runtime holding one of ``keys``.

    ``keys`` are ``publickeyv1_...`` strings; they are parsed once here, and a malformed key raises
    ``ValueError``. At least one key is required (an endpoint without keys should not build a
    verifier at all: it accepts every request). ``now`` returns the current time in seconds since the
    epoch; tests replace it.
    """

    def __init__(self, keys: Sequence[str], *, now: Callable[[], float] = time.time) -> None:
        if isinstance(keys, str):
            keys = [keys]
        self._keys: tuple[Ed25519PublicKey, ...] = tuple(parse_public_key(key) for key in keys)
        if not self._keys:
            raise ValueError("IdentityVerifier needs at least one public key")
        self._now = now

    def verify(self, path: str, headers: Mapping[str, str]) -> None:
        """Verify one request; raise :class:`IdentityError` saying what was wrong if it fails.

        ``path`` is the request path as received (deployment prefix and query string allowed);
        ``headers`` maps lower-case header names to values.
        """
        scheme = headers.get(SCHEME_HEADER)
        if scheme is None:
            raise IdentityError(f"missing header {SCHEME_HEADER}")
        scheme = scheme.strip()
        if scheme == _SCHEME_UNSIGNED:
            raise IdentityError(
                f"request is unsigned ({SCHEME_HEADER}: {_SCHEME_UNSIGNED}) but identity keys are configured"
            )
        if scheme != _SCHEME_V1:
            raise IdentityError(
                f"unsupported signature scheme {_echo(scheme)} in {SCHEME_HEADER}; expected {_SCHEME_V1!r}"
            )

        token = headers.get(JWT_HEADER)
        if token is None:
            raise IdentityError(f"missing header {JWT_HEADER}")
        token = token.strip()
        if len(token) > MAX_TOKEN_LENGTH:
            raise IdentityError(
                f"malformed JWT in {JWT_HEADER}: {len(token)} characters, more than {MAX_TOKEN_LENGTH}"
            )
        segments = token.split(".")
        if len(segments) != 3:
            raise IdentityError(
                f"malformed JWT in {JWT_HEADER}: expected 3 dot-separated segments, got {len(segments)}"
            )
        header_b64, payload_b64, signature_b64 = segments

        header = _json_object(_b64url_decode(header_b64, "header"), "header")
        payload = _b64url_decode(payload_b64, "payload")  # also proves the segment is ASCII
        alg = header.get("alg")
        if alg != _ALG:
            raise IdentityError(f"unsupported JWT alg {_echo(alg)}; expected {_ALG!r}")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise IdentityError(f"unsupported JWT typ {_echo(typ)}; expected 'JWT'")

        signature = _b64url_decode(signature_b64, "signature")
        if len(signature) != 64:
            raise IdentityError(f"bad signature: an Ed25519 signature is 64 bytes, got {len(signature)}")
        signed = f"{header_b64}.{payload_b64}".encode("ascii")
        if not any(_signature_ok(key, signature, signed) for key in self._keys):
            raise IdentityError(
                f"bad signature: the JWT is not signed by any of the {len(self._keys)} configured key(s)"
            )

        claims = _json_object(payload, "payload")
        if "aud" not in claims:
            raise IdentityError("JWT is missing the required claim 'aud'")
        audience = claims["aud"]
        exp = _int_claim(claims, "exp")
        _int_claim(claims, "iat")
        nbf = _int_claim(claims, "nbf")

        now = self._now()
        if now > exp:
            raise IdentityError(f"JWT expired at {exp} (now {int(now)})")
        if now < nbf:
            raise IdentityError(f"JWT not valid before {nbf} (now {int(now)})")

        expected = normalise_path(path)
        if isinstance(audience, str):
            matches = audience == expected
        elif isinstance(audience, list):
            matches = expected in audience
        else:
            raise IdentityError(f"JWT claim 'aud' must be a string or a list, got {_echo(audience)}")
        if not matches:
            raise IdentityError(f"audience mismatch: expected {expected!r} got {_echo(audience)}")


def _signature_ok(key: Ed25519PublicKey, signature: bytes, signed: bytes) -> bool:
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


# ---------------------------------------------------------------------------------------- testing


def sign_request_token(
    private_key: Ed25519PrivateKey,
    key_id: str,
    path: str,
    *,
    now: float | None = None,
    validity: int = 60,
) -> str:
    """Testing helper: mint an ``x-restate-jwt-v1`` token the way the Restate runtime does.

    ``key_id`` goes into the ``kid`` header (normally the ``publickeyv1_...`` form of the matching
    public key). ``path`` becomes the ``aud`` claim verbatim, so pass what the runtime signs: the path
    *without* the deployment prefix (``/invoke/Svc/handler`` or ``/discover``). The claims are
    ``iat = int(now)``, ``nbf = iat - validity`` and ``exp = iat + validity``. Send the token together with
    ``x-restate-signature-scheme: v1``.

    Not used when serving requests; the runtime signs real requests.
    """
    iat = int(time.time() if now is None else now)
    header = {"typ": "JWT", "kid": key_id, "alg": _ALG}
    claims = {"aud": path, "exp": iat + validity, "iat": iat, "nbf": iat - validity}
    signing_input = ".".join(
        _b64url_encode(json.dumps(part, separators=(",", ":")).encode("utf-8")) for part in (header, claims)
    )
    signature = private_key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url_encode(signature)}"
