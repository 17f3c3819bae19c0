"""Request identity verification (docs/protocol.md): key parsing, JWT checks, path normalisation."""

import base64
import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from restate_sync.identity import (
    IdentityError,
    IdentityVerifier,
    normalise_path,
    parse_public_key,
    sign_request_token,
)

NOW = 1_750_000_000
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# ------------------------------------------------------------------------------- test-side minting


def base58_encode(data: bytes) -> str:
    value = int.from_bytes(data, "big")
    out = ""
    while value:
        value, digit = divmod(value, 58)
        out = ALPHABET[digit] + out
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + out


def key_string(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "publickeyv1_" + base58_encode(raw)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: object) -> str:
    return b64url(json.dumps(obj).encode())


def mint(private_key, claims=None, header=None, **overrides) -> str:
    header = {"typ": "JWT", "kid": key_string(private_key), "alg": "EdDSA"} if header is None else header
    if claims is None:
        claims = {"aud": "/invoke/Svc/h", "iat": NOW, "nbf": NOW - 60, "exp": NOW + 60}
    claims = {**claims, **overrides}
    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{b64url(private_key.sign(signing_input.encode()))}"


def signed(token: str) -> dict[str, str]:
    return {"x-restate-signature-scheme": "v1", "x-restate-jwt-v1": token}


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(key):
    return IdentityVerifier([key_string(key)], now=lambda: NOW)


def rejected(verifier: IdentityVerifier, path: str, headers: dict[str, str]) -> str:
    with pytest.raises(IdentityError) as info:
        verifier.verify(path, headers)
    return str(info.value)


# ------------------------------------------------------------------------------- keys


def test_base58_encoder_known_vectors():
    # Bitcoin-alphabet vectors, so the decoder is checked against something other than itself.
    assert base58_encode(b"") == ""
    assert base58_encode(b"\x00\x00\x01") == "112"
    assert base58_encode(b"hello world") == "StV1DL6CwTryKyV"


def test_parse_public_key_round_trips(key):
    parsed = parse_public_key(key_string(key))
    assert parsed.public_bytes(Encoding.Raw, PublicFormat.Raw) == key.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw
    )


def test_parse_public_key_keeps_leading_zero_bytes():
    raw = b"\x00\x00" + bytes(range(1, 31))
    # Not every 32-byte string is a valid curve point, but from_public_bytes only checks the length.
    parsed = parse_public_key("publickeyv1_" + base58_encode(raw))
    assert parsed.public_bytes(Encoding.Raw, PublicFormat.Raw) == raw


def test_bad_key_wrong_prefix(key):
    with pytest.raises(ValueError, match="must start with 'publickeyv1_'"):
        parse_public_key(key_string(key).replace("publickeyv1_", "publickeyv2_"))


def test_bad_key_wrong_length():
    with pytest.raises(ValueError, match="decodes to 31 bytes"):
        parse_public_key("publickeyv1_" + base58_encode(b"\x07" * 31))
    with pytest.raises(ValueError, match="decodes to 0 bytes"):
        parse_public_key("publickeyv1_")


@pytest.mark.parametrize("bad", ["0", "O", "I", "l", "+"])
def test_bad_key_invalid_base58_char(key, bad):
    text = key_string(key)
    with pytest.raises(ValueError, match=re.escape(f"invalid base58 character {bad!r} at position 8")):
        parse_public_key(text[:20] + bad + text[21:])


def test_verifier_rejects_bad_keys_at_construction(key):
    with pytest.raises(ValueError, match="must start with"):
        IdentityVerifier([key_string(key), "nope"])
    with pytest.raises(ValueError, match="at least one public key"):
        IdentityVerifier([])


# ------------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/invoke/A/b", "/invoke/A/b"),
        ("/foo/invoke/A/b", "/invoke/A/b"),
        ("/p/q/invoke/A/b?x=1", "/invoke/A/b"),
        ("/discover", "/discover"),
        ("/p/q/discover", "/discover"),
        ("/discover?x=1", "/discover"),
        ("/health", "/health"),
        ("/invoke/A", "/invoke/A"),
        ("/foo/bar/baz", "/foo/bar/baz"),
    ],
)
def test_normalise_path(path, expected):
    assert normalise_path(path) == expected


# ------------------------------------------------------------------------------- accepted


def test_valid_token_with_prefixed_path(key, verifier):
    verifier.verify("/p/q/invoke/Svc/h", signed(mint(key)))


def test_valid_token_for_discover(key, verifier):
    verifier.verify("/discover", signed(mint(key, aud="/discover")))
    verifier.verify("/p/discover?x=1", signed(mint(key, aud="/discover")))


def test_list_valued_audience(key, verifier):
    verifier.verify("/invoke/Svc/h", signed(mint(key, aud=["/other", "/invoke/Svc/h"])))


def test_second_configured_key_signed(key):
    other = Ed25519PrivateKey.generate()
    verifier = IdentityVerifier([key_string(other), key_string(key)], now=lambda: NOW)
    verifier.verify("/invoke/Svc/h", signed(mint(key)))


def test_padded_segments_and_typ_case_are_tolerated(key, verifier):
    header = {"typ": "jwt", "alg": "EdDSA"}  # no kid, lower-case typ
    claims = {"aud": "/invoke/Svc/h", "iat": NOW, "nbf": NOW - 60, "exp": NOW + 60}
    head, body = segment(header), segment(claims)
    sig = b64url(key.sign(f"{head}.{body}".encode()))
    sig += "=" * (-len(sig) % 4)
    verifier.verify("/invoke/Svc/h", signed(f"{head}.{body}.{sig}"))


def test_validity_window_edges_are_inclusive(key):
    token = mint(key)
    IdentityVerifier([key_string(key)], now=lambda: NOW + 60).verify("/invoke/Svc/h", signed(token))
    IdentityVerifier([key_string(key)], now=lambda: NOW - 60).verify("/invoke/Svc/h", signed(token))


def test_sign_request_token_helper(key):
    token = sign_request_token(key, key_string(key), "/invoke/Svc/h", now=NOW, validity=30)
    header, claims = (json.loads(base64.urlsafe_b64decode(s + "==")) for s in token.split(".")[:2])
    assert header == {"typ": "JWT", "kid": key_string(key), "alg": "EdDSA"}
    assert claims == {"aud": "/invoke/Svc/h", "iat": NOW, "nbf": NOW - 30, "exp": NOW + 30}
    IdentityVerifier([key_string(key)], now=lambda: NOW).verify("/x/invoke/Svc/h", signed(token))
    expired = IdentityVerifier([key_string(key)], now=lambda: NOW + 31)
    assert "expired at" in rejected(expired, "/invoke/Svc/h", signed(token))


# ------------------------------------------------------------------------------- rejected


def test_expired(key, verifier):
    message = rejected(verifier, "/invoke/Svc/h", signed(mint(key, exp=NOW - 1)))
    assert f"JWT expired at {NOW - 1} (now {NOW})" in message


def test_not_yet_valid(key, verifier):
    message = rejected(verifier, "/invoke/Svc/h", signed(mint(key, nbf=NOW + 5)))
    assert f"not valid before {NOW + 5}" in message


def test_missing_scheme(key, verifier):
    message = rejected(verifier, "/invoke/Svc/h", {"x-restate-jwt-v1": mint(key)})
    assert "missing header x-restate-signature-scheme" in message


def test_unsigned_scheme(verifier):
    message = rejected(verifier, "/invoke/Svc/h", {"x-restate-signature-scheme": "unsigned"})
    assert "request is unsigned" in message


def test_unknown_scheme(key, verifier):
    headers = {"x-restate-signature-scheme": "v2", "x-restate-jwt-v1": mint(key)}
    assert "unsupported signature scheme 'v2'" in rejected(verifier, "/invoke/Svc/h", headers)


def test_missing_jwt_header(verifier):
    message = rejected(verifier, "/invoke/Svc/h", {"x-restate-signature-scheme": "v1"})
    assert "missing header x-restate-jwt-v1" in message


@pytest.mark.parametrize("alg", ["HS256", "none", "ES256", None])
def test_wrong_alg(key, verifier, alg):
    header = {"typ": "JWT", "alg": alg} if alg is not None else {"typ": "JWT"}
    message = rejected(verifier, "/invoke/Svc/h", signed(mint(key, header=header)))
    assert f"unsupported JWT alg {alg!r}; expected 'EdDSA'" in message


def test_wrong_typ(key, verifier):
    message = rejected(verifier, "/invoke/Svc/h", signed(mint(key, header={"typ": "JOSE+X", "alg": "EdDSA"})))
    assert "unsupported JWT typ 'JOSE+X'" in message


def test_tampered_payload(key, verifier):
    head, _, sig = mint(key).split(".")
    forged = segment({"aud": "/invoke/Svc/h", "iat": NOW, "nbf": NOW - 60, "exp": NOW + 3600})
    message = rejected(verifier, "/invoke/Svc/h", signed(f"{head}.{forged}.{sig}"))
    assert "bad signature" in message


def test_signed_by_unknown_key(verifier):
    message = rejected(verifier, "/invoke/Svc/h", signed(mint(Ed25519PrivateKey.generate())))
    assert "bad signature: the JWT is not signed by any of the 1 configured key(s)" in message


def test_wrong_audience(key, verifier):
    message = rejected(verifier, "/p/invoke/Svc/other", signed(mint(key)))
    assert "audience mismatch: expected '/invoke/Svc/other' got '/invoke/Svc/h'" in message
    message = rejected(verifier, "/discover", signed(mint(key, aud=["/invoke/Svc/h"])))
    assert "audience mismatch: expected '/discover' got ['/invoke/Svc/h']" in message


@pytest.mark.parametrize("claim", ["aud", "exp", "iat", "nbf"])
def test_missing_claim(key, verifier, claim):
    claims = {"aud": "/invoke/Svc/h", "iat": NOW, "nbf": NOW - 60, "exp": NOW + 60}
    del claims[claim]
    message = rejected(verifier, "/invoke/Svc/h", signed(mint(key, claims=claims)))
    assert f"missing the required claim {claim!r}" in message


@pytest.mark.parametrize("value", ["1750000060", 1750000060.5, True, None])
def test_non_integer_time_claim(key, verifier, value):
    message = rejected(verifier, "/invoke/Svc/h", signed(mint(key, exp=value)))
    assert "claim 'exp' must be an integer" in message


def test_audience_of_wrong_type(key, verifier):
    message = rejected(verifier, "/invoke/Svc/h", signed(mint(key, aud=7)))
    assert "claim 'aud' must be a string or a list" in message


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        ("garbage", "expected 3 dot-separated segments, got 1"),
        ("a.b.c.d", "expected 3 dot-separated segments, got 4"),
        ("", "expected 3 dot-separated segments, got 1"),
        ("!!.e30.AA", "the header is not base64url"),
        ("e30.e30.AA", "unsupported JWT alg None"),
        (f"{b64url(b'not json')}.e30.AA", "the header is not JSON"),
        (f"{b64url(b'[1]')}.e30.AA", "the header is not a JSON object"),
        (f"{segment({'alg': 'EdDSA'})}.e30.A", "the signature is not base64url"),
        (f"{segment({'alg': 'EdDSA'})}.e30.AAAA", "an Ed25519 signature is 64 bytes, got 3"),
        (f"{segment({'alg': 'EdDSA'})}.\u00e9\u00e9.AAAA", "the payload is not base64url"),
    ],
)
def test_garbage_token(verifier, token, fragment):
    message = rejected(verifier, "/invoke/Svc/h", signed(token))
    assert fragment in message


def test_non_json_payload_with_valid_signature(key, verifier):
    head = segment({"typ": "JWT", "alg": "EdDSA"})
    body = b64url(b"\xff\xfe")
    sig = b64url(key.sign(f"{head}.{body}".encode()))
    assert "the payload is not JSON" in rejected(verifier, "/invoke/Svc/h", signed(f"{head}.{body}.{sig}"))


def test_deeply_nested_header_is_a_clean_rejection(verifier):
    # 1000 nested arrays fit under the length cap; json would recurse past its limit
    head = b64url(b"[" * 1000 + b"]" * 1000)
    message = rejected(verifier, "/invoke/Svc/h", signed(f"{head}.e30.AA"))
    # CPython 3.11's json recurses past its limit here (not JSON); 3.12+ parses it (not an object)
    assert re.search(r"the header is not (JSON|a JSON object)", message)


def test_integer_of_thousands_of_digits_is_a_clean_rejection(verifier):
    head = b64url(b'{"alg": ' + b"9" * 3000 + b"}")
    message = rejected(verifier, "/invoke/Svc/h", signed(f"{head}.e30.AA"))
    assert "unsupported JWT alg 999" in message
    assert len(message) < 300  # the value is quoted truncated


def test_overlong_token_is_refused_before_decoding(verifier):
    token = "e30." + "A" * 5000 + ".AA"
    message = rejected(verifier, "/invoke/Svc/h", signed(token))
    assert "more than 4096" in message


def test_errors_do_not_echo_the_token(key, verifier):
    token = mint(key, aud="/invoke/Svc/zzz")
    message = rejected(verifier, "/invoke/Svc/h", signed(token))
    assert token not in message
    assert token.split(".")[2] not in message


def test_restate_sync_does_not_import_identity():
    import subprocess
    import sys

    code = "import sys, restate_sync; assert 'restate_sync.identity' not in sys.modules; assert 'cryptography' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_format_public_key_matches_the_independent_encoder_and_parses_back():
    from restate_sync.identity import format_public_key

    private = Ed25519PrivateKey.generate()
    formatted = format_public_key(private.public_key())
    assert formatted == key_string(private)
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert parse_public_key(formatted).public_bytes(Encoding.Raw, PublicFormat.Raw) == raw
