"""Lab certificate authority and server certificate for the OpenBao listener."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab._ca import build_ca

# Long enough that a lab directory kept between sessions does not expire under it.
CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=825)


def write_private(path: Path, data: bytes) -> None:
    """Write data to path with mode 0600 from the first byte on, replacing the file atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_ca(ca_cert: Path, ca_key: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_key} is not an EC private key; remove the tls directory to generate a new lab CA")
    return cert, key


def _create_ca(ca_cert: Path, ca_key: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "retail.edge lab OpenBao CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert, key = build_ca(name, now - datetime.timedelta(minutes=5), now + CA_VALIDITY, digital_signature=False)
    write_private(ca_key, _key_pem(key))
    ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _create_server_cert(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_tls(tls_dir: Path) -> tuple[Path, Path, Path]:
    """Create the lab CA and a server certificate for 127.0.0.1 unless they exist; return (ca, cert, key) paths."""
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_cert, ca_key = tls_dir / "ca.pem", tls_dir / "ca-key.pem"
    server_cert, server_key = tls_dir / "server.pem", tls_dir / "server-key.pem"

    if ca_cert.is_file() and ca_key.is_file():
        ca, key = _load_ca(ca_cert, ca_key)
    else:
        ca, key = _create_ca(ca_cert, ca_key)
        server_cert.unlink(missing_ok=True)

    if not (server_cert.is_file() and server_key.is_file()):
        _create_server_cert(ca, key, server_cert, server_key)
    return ca_cert, server_cert, server_key
