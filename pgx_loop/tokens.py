"""``pgx-loop keygen`` and ``pgx-loop token``: a signing key pair and test tokens, as an EHR would make them.

For trying the service with authentication on (README, Authentication): ``keygen`` writes a
private key and the JWKS to list as a trusted issuer's ``jwks_file``; ``token`` signs the claims
CDS Hooks 2.0 requires with that key. Real EHRs hold their own keys; these are for tests,
sandboxes and integration work.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import click
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1}
ALGS = ["ES384", "ES256", "RS384", "RS256"]


def _private_key(alg: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    curve = CURVES.get(alg)
    return ec.generate_private_key(curve()) if curve else rsa.generate_private_key(65537, 3072)


def public_jwks(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, kid: str, alg: str) -> dict:
    """The JWKS publishing ``private``'s public key under ``kid``, for signatures with ``alg`` only."""
    family = ECAlgorithm if alg.startswith("ES") else RSAAlgorithm
    jwk = family.to_jwk(private.public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": alg}]}


@click.command()
@click.option("--kid", required=True, help="Key id: the tokens' header names it, the JWKS lists it.")
@click.option("--alg", type=click.Choice(ALGS), default="ES384", show_default=True)
@click.option(
    "--out",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to write KID.pem (the private key) and KID.jwks.json (the public key set).",
)
def keygen(kid: str, alg: str, directory: Path) -> None:
    """Make a signing key pair: a private key (PEM, readable by you only) and its public JWKS."""
    directory.mkdir(parents=True, exist_ok=True)
    private = _private_key(alg)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path, jwks_path = directory / f"{kid}.pem", directory / f"{kid}.jwks.json"
    key_path.touch(mode=0o600)
    key_path.write_bytes(pem)
    jwks_path.write_text(json.dumps(public_jwks(private, kid, alg), indent=2) + "\n")
    click.echo(f"private key: {key_path}  (keep it secret; it signs tokens)")
    click.echo(f"public JWKS: {jwks_path}  (list it as the issuer's jwks_file)")


def _alg_of(private: object, requested: str | None) -> str:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        alg = {"secp384r1": "ES384", "secp256r1": "ES256"}.get(private.curve.name)
        if alg is None or (requested and requested != alg):
            raise click.BadParameter(f"an EC key on {private.curve.name} cannot sign {requested or 'ES256/ES384'}")
        return alg
    if isinstance(private, rsa.RSAPrivateKey):
        if requested and not requested.startswith("RS"):
            raise click.BadParameter(f"an RSA key cannot sign {requested}")
        return requested or "RS384"
    raise click.BadParameter("not an EC or RSA private key")


@click.command()
@click.option("--iss", required=True, help="The issuer, exactly as listed in the trusted issuers file.")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--kid", required=True, help="The key id the issuer's JWKS lists the public key under.")
@click.option(
    "--aud",
    required=True,
    help="The URL being called: PGX_LOOP_PUBLIC_BASE_URL plus /cds-services, /cds-services/ID or .../feedback.",
)
@click.option("--alg", type=click.Choice(ALGS), default=None, help="Default: from the key (RSA: RS384).")
@click.option("--lifetime", type=click.IntRange(1, 3600), default=300, show_default=True, help="Seconds until exp.")
@click.option("--jku", default=None, help="A jku header, as some EHRs (and the HL7 sandbox) send.")
def token(iss: str, key_path: Path, kid: str, aud: str, alg: str | None, lifetime: int, jku: str | None) -> None:
    """Print a signed JWT for one call to the service (a new jti each time: a token is accepted once)."""
    try:
        private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(
            f"{key_path}: not an unencrypted PEM private key ({exc})", param_hint="--key"
        ) from None
    alg = _alg_of(private, alg)
    now = int(time.time())
    claims = {"iss": iss, "aud": aud, "iat": now, "exp": now + lifetime, "jti": str(uuid.uuid4())}
    headers = {"kid": kid, "typ": "JWT", **({"jku": jku} if jku else {})}
    click.echo(jwt.encode(claims, private, algorithm=alg, headers=headers))
