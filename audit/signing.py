"""Signing audit checkpoints: Ed25519 when a key pair is configured, HMAC-SHA256 otherwise.

Keys come from the environment (each also as ``NAME_FILE``):

* ``SIGNOFF_AUDIT_SIGNING_KEY``: an Ed25519 private key, PEM (PKCS#8) or the base64 of its 32
  raw bytes. Anyone holding the public key (``SIGNOFF_AUDIT_VERIFY_KEY``, or derived from the
  private key) can verify, without being able to sign. Generate one with
  ``manage.py audit_checkpoint --generate-key``.
* ``SIGNOFF_AUDIT_HMAC_KEY``: a shared secret for HMAC-SHA256, used when no Ed25519 key is set;
  unset, it is derived from ``SECRET_KEY``. Only holders of the key can verify.
"""

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.chain import FORMAT_VERSION, canonical_json

ED25519 = "ed25519"
HMAC_SHA256 = "hmac-sha256"


def checkpoint_message(*, sequence: int, head_hash: str, signed_at: str) -> bytes:
    """The bytes a checkpoint's signature covers (canonical JSON, see ``audit.chain``)."""
    return canonical_json(
        {"head_hash": head_hash, "sequence": sequence, "signed_at": signed_at, "v": FORMAT_VERSION}
    ).encode()


@dataclass(frozen=True)
class Signature:
    algorithm: str
    key_id: str
    signature: str


def sign(message: bytes) -> Signature:
    """Sign ``message`` with the configured key."""
    private = _private_key()
    if private is not None:
        public = private.public_key()
        return Signature(ED25519, _ed25519_key_id(public), private.sign(message).hex())
    key = _hmac_key()
    return Signature(HMAC_SHA256, _hmac_key_id(key), hmac.new(key, message, "sha256").hexdigest())


def verify(message: bytes, signature: Signature, *, public_key: str = "") -> str | None:
    """Check ``signature`` over ``message``; return None when valid, else what is wrong.

    Ed25519 signatures are checked with ``public_key`` (PEM or base64) when given, else with the
    configured verify or signing key; HMAC signatures with the configured HMAC key.
    """
    try:
        raw = bytes.fromhex(signature.signature)
    except ValueError:
        return "the signature is not hex"
    if signature.algorithm == ED25519:
        public = _public_key(public_key)
        if public is None:
            return "no Ed25519 public key is configured to check it (SIGNOFF_AUDIT_VERIFY_KEY)"
        if _ed25519_key_id(public) != signature.key_id:
            return f"it was signed with key {signature.key_id}, not {_ed25519_key_id(public)}"
        try:
            public.verify(raw, message)
        except InvalidSignature:
            return "the Ed25519 signature does not match"
        return None
    if signature.algorithm == HMAC_SHA256:
        key = _hmac_key()
        if _hmac_key_id(key) != signature.key_id:
            return f"it was signed with HMAC key {signature.key_id}, not the configured one"
        expected = hmac.new(key, message, "sha256").digest()
        return None if hmac.compare_digest(expected, raw) else "the HMAC does not match"
    return f"unknown signature algorithm {signature.algorithm!r}"


def generate_key_pair() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def _private_key() -> Ed25519PrivateKey | None:
    text = settings.SIGNOFF_AUDIT_SIGNING_KEY.strip()
    if not text:
        return None
    key = _load(text, serialization.load_pem_private_key, Ed25519PrivateKey.from_private_bytes)
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured("SIGNOFF_AUDIT_SIGNING_KEY must be an Ed25519 private key")
    return key


def _public_key(explicit: str = "") -> Ed25519PublicKey | None:
    text = (explicit or settings.SIGNOFF_AUDIT_VERIFY_KEY).strip()
    if not text:
        private = _private_key()
        return private.public_key() if private is not None else None
    key = _load(text, serialization.load_pem_public_key, Ed25519PublicKey.from_public_bytes)
    if not isinstance(key, Ed25519PublicKey):
        raise ImproperlyConfigured("the audit verify key must be an Ed25519 public key")
    return key


def _load(text: str, from_pem: Any, from_raw: Any) -> Any:
    try:
        if text.startswith("-----BEGIN"):
            return from_pem(text.encode(), **({"password": None} if "PRIVATE" in text else {}))
        return from_raw(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ImproperlyConfigured(f"cannot read the audit signing key: {exc}") from None


def _hmac_key() -> bytes:
    configured = settings.SIGNOFF_AUDIT_HMAC_KEY
    if configured:
        return configured.encode()
    return hashlib.sha256(b"signoff.audit.checkpoint:" + settings.SECRET_KEY.encode()).digest()


def _ed25519_key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def _hmac_key_id(key: bytes) -> str:
    return "hmac:" + hashlib.sha256(b"key-id:" + key).hexdigest()[:16]
