"""C2PA content credentials: a signed manifest saying "created by keypaint, generative AI".

Signing needs an X.509 certificate. Unless the user points to their own (`ProvenanceSettings`,
$KEYPAINT_C2PA_CERT / $KEYPAINT_C2PA_KEY), keypaint makes a local, self-signed CA and a signing certificate
under `$KEYPAINT_HOME/c2pa/` on first use. Such credentials prove the file is unchanged since this install
signed it; they do not prove who the install belongs to, so other validators report them as untrusted
("Valid", not "Trusted"). keypaint's own verifier trusts the local CA: its pictures read "Trusted" there.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keypaint.provenance.settings import DIGITAL_SOURCE_TYPE, ProvenanceError, ProvenanceSettings

ASSERTION = "org.keypaint.generation"  # keypaint's own assertion: model name and hash, picture id
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_ORG = "keypaint (self-signed, local install)"
_VALID_YEARS = 10


@dataclass(frozen=True)
class C2paResult:
    """What a picture's content credentials say, as `keypaint verify` reports it."""

    status: str  # "found" (valid or trusted), "missing", "tampered" (invalid) or "error" (unreadable)
    state: str | None = None  # c2pa's validation state: "Trusted", "Valid" or "Invalid"
    failures: list[str] = field(default_factory=list)  # c2pa failure codes, e.g. assertion.dataHash.mismatch
    generator: str | None = None
    digital_source_type: str | None = None
    model: dict[str, Any] | None = None
    signer: str | None = None  # the certificate's issuer organisation


def c2pa_dir(settings: ProvenanceSettings) -> Path:
    from keypaint.models.registry import keypaint_home

    return (settings.home or keypaint_home()) / "c2pa"


def signing_material(settings: ProvenanceSettings) -> tuple[bytes, bytes]:
    """(PEM certificate chain, PEM private key): the user's own, else the local ones (made if missing)."""
    own = settings.signing_files()
    if own is not None:
        cert, key = own
        try:
            return cert.read_bytes(), key.read_bytes()
        except OSError as exc:
            raise ProvenanceError(f"cannot read the C2PA signing files: {exc}") from None
    folder = c2pa_dir(settings)
    cert, key = folder / "signer-chain.pem", folder / "signer-key.pem"
    if not (cert.is_file() and key.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        with _exclusive(folder / ".lock"):  # first pictures saved at once (threads, processes) make one pair
            if not (cert.is_file() and key.is_file()):
                _create_local_ca(folder)
    return cert.read_bytes(), key.read_bytes()


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` across threads and processes (flock on POSIX; none elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: keypaint's first picture there is made before any server starts
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def local_ca(settings: ProvenanceSettings) -> str | None:
    """The local CA certificate (PEM) if this install has one: verify trusts pictures signed under it."""
    path = c2pa_dir(settings) / "ca.pem"
    return path.read_text() if path.is_file() else None


def _create_local_ca(folder: Path) -> None:
    """A self-signed CA and a signing certificate with the extensions C2PA's certificate profile asks for.

    The signer must not be a CA, must have digitalSignature key usage and an extended key usage C2PA
    accepts (emailProtection here), and must chain to a separate root: c2pa refuses self-signed leaves.
    """
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("keypaint local CA")
    ca = (
        _cert_builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        _cert_builder(_name("keypaint signer"), ca_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write_private(folder / "signer-key.pem", key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    # the chain appears last and whole (renamed into place): both files there means a complete pair
    partial = folder / "signer-chain.pem.partial"
    partial.write_bytes(signer.public_bytes(pem) + ca.public_bytes(pem))
    os.replace(partial, folder / "signer-chain.pem")
    # the CA's key is not kept: nothing else can be signed under this CA, so leaking the folder later
    # cannot mint new certificates that keypaint's verifier would trust


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
    ])


def _cert_builder(
    subject: x509.Name, issuer: x509.Name, public_key: Any, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * _VALID_YEARS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def manifest(*, model_name: str | None, model_hash: str | None, picture_id: str | None, version: str) -> dict:
    """The manifest definition: a c2pa.created action with IPTC's trainedAlgorithmicMedia, and the model."""
    return {
        "claim_generator_info": [{"name": "keypaint", "version": version}],
        "title": f"keypaint picture {picture_id}" if picture_id else "keypaint picture",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": DIGITAL_SOURCE_TYPE,
                "softwareAgent": {"name": "keypaint", "version": version},
                "description": "created by keypaint, generative AI",
            }]}},
            {"label": ASSERTION, "data": {
                "description": "created by keypaint, generative AI",
                "model": {"name": model_name, "sha256": model_hash},
                "picture_id": picture_id,
            }},
        ],
    }


def sign(data: bytes, fmt: str, definition: dict, settings: ProvenanceSettings) -> bytes:
    """`data` (an encoded picture) with the signed manifest embedded."""
    cert, key = signing_material(settings)
    context = c2pa.Context(settings=c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(settings.algorithm(), cert, key, None))
        builder = c2pa.Builder.from_json(json.dumps(definition), context)
        out = io.BytesIO()
        builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA signing failed: {exc}") from None
    return out.getvalue()


def read(data: bytes, settings: ProvenanceSettings | None = None) -> C2paResult:
    """Validate the content credentials in an encoded picture (format detected from its bytes)."""
    anchors = local_ca(settings or ProvenanceSettings())
    options: dict[str, Any] = {"verify": {"remote_manifest_fetch": False}}
    if anchors:
        options["trust"] = {"user_anchors": anchors}
    mime = _mime_of(data)
    if mime is None:
        return C2paResult(status="missing")  # a format keypaint does not write; c2pa reads PNG/JPEG/WebP
    try:
        context = c2pa.Context(settings=c2pa.Settings.from_dict(options))
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
        if reader is None:
            return C2paResult(status="missing")
        with reader:
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
            active = reader.get_active_manifest() or {}
    except c2pa.C2paError as exc:
        return C2paResult(status="error", failures=[str(exc)])
    failures = [item.get("code", "?") for item in (results.get("activeManifest") or {}).get("failure", [])]
    failures = [code for code in failures if code != "signingCredential.untrusted"]
    status = "tampered" if state == "Invalid" or failures else "found"
    generator = next((g.get("name") for g in active.get("claim_generator_info", []) if g.get("name")), None)
    source, model = None, None
    for assertion in active.get("assertions", []):
        label, body = assertion.get("label", ""), assertion.get("data") or {}
        if label.startswith("c2pa.actions"):
            source = next((a.get("digitalSourceType") for a in body.get("actions", [])
                           if a.get("action") == "c2pa.created"), source)
        elif label == ASSERTION:
            model = body.get("model")
    signer = (active.get("signature_info") or {}).get("issuer")
    return C2paResult(status=status, state=state, failures=failures, generator=generator,
                      digital_source_type=source, model=model, signer=signer)


def _mime_of(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG"):
        return MIME["png"]
    if data.startswith(b"\xff\xd8"):
        return MIME["jpeg"]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return MIME["webp"]
    return None
