"""The sandbox's token-signing key and its JWKS.

One RSA key signs every token of every tenant, like Entra's shared `common` keys. It is
generated per run, unless the state dir keeps it (``serve --state-dir``): then, as with
Entra, tokens issued before a restart still validate after it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKey:
    """The RSA key and its self-signed certificate; new ones unless both are given."""

    def __init__(
        self,
        private_key: rsa.RSAPrivateKey | None = None,
        certificate: x509.Certificate | None = None,
    ) -> None:
        if (private_key is None) != (certificate is None):
            raise ValueError("give both the private key and its certificate, or neither")
        self._private = private_key or rsa.generate_private_key(65537, key_size=2048)
        self.public_key = self._private.public_key()
        # Entra publishes its keys as self-signed certificates (x5c); some validators use it.
        self._certificate = certificate or _self_signed_certificate(self._private)
        if _public_der(self._certificate.public_key()) != _public_der(self.public_key):
            raise ValueError("the certificate is not for this private key")
        der = self._certificate.public_bytes(serialization.Encoding.DER)
        self.x5t = b64url(hashlib.sha1(der).digest())  # noqa: S324 - x5t is SHA-1 by definition
        self.kid = self.x5t  # Entra's kid equals x5t
        self._x5c = base64.b64encode(der).decode("ascii")

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        """The key ``to_pem`` wrote. Raises ValueError when `data` is not one."""
        private_key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        return cls(private_key, x509.load_pem_x509_certificate(data))

    def to_pem(self) -> bytes:
        """Private key and certificate, PEM, unencrypted (a throwaway test key)."""
        key = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key + self._certificate.public_bytes(serialization.Encoding.PEM)

    def jwk(self, issuer: str | None = None) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        key = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": _int_b64url(numbers.n),
            "e": _int_b64url(numbers.e),
            "x5c": [self._x5c],
            "cloud_instance_name": "microsoftonline.com",
        }
        if issuer:
            key["issuer"] = issuer
        return key

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims,
            self._private,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": self.kid, "x5t": self.x5t},
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a token signed by this key. Raises jwt.InvalidTokenError otherwise.
        Times and audience are the caller's business (they use the sandbox clock)."""
        header, claims, signing_input, signature = parse_jwt(token)
        if header.get("alg") != "RS256" or header.get("kid") not in (None, self.kid):
            raise jwt.InvalidSignatureError("token not signed by a sandbox key")
        try:
            self.public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise jwt.InvalidSignatureError("signature verification failed") from None
        return claims


def _self_signed_certificate(private_key: rsa.RSAPrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "entra-sandbox token signing")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(private_key, hashes.SHA256())
    )


def _public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


_B64URL = str.maketrans("-_", "+/")


def _b64url_decode(segment: str) -> bytes:
    # Strict (validate=True): a stray character makes the token malformed, as for PyJWT.
    return base64.b64decode(segment.translate(_B64URL) + "=" * (-len(segment) % 4), validate=True)


def parse_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS, unverified. Raises
    jwt.DecodeError when it is not one.

    Done here rather than with PyJWT, whose per-character base64 check costs ~0.4 ms per
    token: the token endpoint parses every assertion and benchmarks send thousands."""
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_b64url_decode(header_b64))
        claims = json.loads(_b64url_decode(payload_b64))
        signature = _b64url_decode(signature_b64)
    except (ValueError, TypeError, AttributeError, binascii.Error):
        raise jwt.DecodeError("not a compact JWS") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise jwt.DecodeError("header and payload must be JSON objects")
    return header, claims, f"{header_b64}.{payload_b64}".encode("ascii"), signature
