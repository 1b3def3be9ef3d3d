"""The team services' TLS: a private CA and a server certificate for the address they listen on.

Generated once in `<services>/tls/` (the keys 0600); a team that has its own certificate passes it by
path instead. Clients trust `ca.crt` alone, which is what a team member copies to their machine: with
it PostgreSQL is reached with `sslmode=verify-full` and the mlflow server with
MLFLOW_TRACKING_SERVER_CERT_PATH, so a server that cannot show a certificate signed by it for the
address in the URL is refused.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from imdbclf.errors import UserError

VALID_DAYS = 825  # what browsers and Apple's TLS stack accept for a server certificate


@dataclass(frozen=True)
class Certificates:
    """The files a TLS server and its clients need."""

    ca: Path     # what clients trust
    cert: Path   # the server's certificate, signed by the CA
    key: Path    # its private key (0600)


def _san(host: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600 from its creation, not chmod-ed after)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, public_key, issuer, signing_key, *, ca: bool, hosts: list[str]):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS if not ca else 10 * 365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        builder = (builder.add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(signing_key, hashes.SHA256())


def _names(cert_path: Path) -> set[str]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in names.get_values_for_type(x509.IPAddress)} | set(names.get_values_for_type(x509.DNSName))


def ensure(folder: Path, hosts: list[str]) -> Certificates:
    """A CA (kept) and a server certificate naming every address in `hosts`, made again when the
    services move to an address the certificate does not name."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(mode=0o700, exist_ok=True)
    files = Certificates(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    ca_key_path = folder / "ca.key"
    if not (files.ca.exists() and ca_key_path.exists()):
        ca_key = _new_key()
        ca_name = _name("imdbclf services CA")
        ca_cert = _certificate(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True, hosts=[])
        write_private(ca_key_path, _pem_key(ca_key))
        files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        files.cert.unlink(missing_ok=True)
    if files.cert.exists() and files.key.exists() and set(hosts) <= _names(files.cert):
        return files
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(files.ca.read_bytes())
    key = _new_key()
    cert = _certificate(_name(hosts[0]), key.public_key(), ca_cert.subject, ca_key, ca=False, hosts=hosts)
    write_private(files.key, _pem_key(key))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


def given(ca: Path, cert: Path, key: Path) -> Certificates:
    """The team's own certificate, by path: each file must exist."""
    for what, path in (("--tls-ca", ca), ("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise UserError(f"{what} {path}: no such file")
    return Certificates(Path(ca).resolve(), Path(cert).resolve(), Path(key).resolve())
