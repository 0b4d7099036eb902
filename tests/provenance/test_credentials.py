"""C2PA signing material: the local self-signed CA made on first use, or the user's own certificate."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from keypaint.provenance import credentials
from keypaint.provenance.settings import ENV_CERT, ENV_KEY, ProvenanceError, ProvenanceSettings


def test_first_use_creates_a_local_ca_and_a_c2pa_signing_certificate(_private_home: Path) -> None:
    chain, key = credentials.signing_material(ProvenanceSettings())
    folder = _private_home / "c2pa"
    made = sorted(p.name for p in folder.iterdir())
    assert made == [".lock", "ca.pem", "signer-chain.pem", "signer-key.pem"]
    assert stat.S_IMODE(os.stat(folder / "signer-key.pem").st_mode) == 0o600
    signer, ca = x509.load_pem_x509_certificates(chain)
    assert signer.issuer == ca.subject and ca.issuer == ca.subject  # a leaf under a self-signed root
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    usages = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in usages
    assert b"PRIVATE KEY" in key
    assert credentials.signing_material(ProvenanceSettings()) == (chain, key)  # made once, then reused


def test_pictures_signed_at_once_on_first_use_share_one_signing_pair(tmp_path: Path) -> None:
    """Four savers on a fresh home (a server's first jobs): one key and chain are made, and each matches."""
    from concurrent.futures import ThreadPoolExecutor

    settings = ProvenanceSettings(home=tmp_path)
    with ThreadPoolExecutor(4) as pool:
        pairs = list(pool.map(lambda _: credentials.signing_material(settings), range(4)))
    assert len(set(pairs)) == 1
    chain, key = pairs[0]
    [signer, _] = x509.load_pem_x509_certificates(chain)
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(key, password=None)
    assert private.public_key().public_numbers() == signer.public_key().public_numbers()


def test_a_users_own_certificate_is_used_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = ProvenanceSettings(home=tmp_path / "elsewhere")
    credentials.signing_material(other)  # stands in for a certificate the user got elsewhere
    monkeypatch.setenv(ENV_CERT, str(tmp_path / "elsewhere" / "c2pa" / "signer-chain.pem"))
    monkeypatch.setenv(ENV_KEY, str(tmp_path / "elsewhere" / "c2pa" / "signer-key.pem"))
    definition = credentials.manifest(model_name="m", model_hash="ab", picture_id="01020304", version="t")
    signed = credentials.sign(_png(), "png", definition, ProvenanceSettings())
    result = credentials.read(signed)  # this home's CA did not sign it: valid but not trusted here
    assert result.status == "found" and result.state == "Valid"
    assert not (Path(os.environ["KEYPAINT_HOME"]) / "c2pa").exists()  # no local CA was made
    assert credentials.read(signed, other).state == "Trusted"


def test_half_a_certificate_setting_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_CERT, str(tmp_path / "cert.pem"))
    with pytest.raises(ProvenanceError, match=ENV_KEY):
        credentials.signing_material(ProvenanceSettings())


def test_unreadable_certificate_files_are_a_clear_error(tmp_path: Path) -> None:
    settings = ProvenanceSettings(c2pa_cert=tmp_path / "no.pem", c2pa_key=tmp_path / "no-key.pem")
    with pytest.raises(ProvenanceError, match="cannot read the C2PA signing files"):
        credentials.signing_material(settings)


def test_a_file_without_credentials_reads_missing() -> None:
    assert credentials.read(_png()).status == "missing"


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 120, 30)).save(buffer, format="PNG")
    return buffer.getvalue()
