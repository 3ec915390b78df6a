#!/usr/bin/python3
"""A minimal Docker registry token server for tests.

Implements the distribution token flow (https://distribution.github.io/distribution/spec/auth/token/):
a client that got `401 WWW-Authenticate: Bearer realm=...,service=...,scope=...` from the
registry asks this server for a token with HTTP Basic credentials; the server answers a JWT
signed with ES256 whose `access` claim grants the requested scopes.

Only the single configured user is accepted; anonymous or wrong credentials get 401, so a test
can tell "client forgot to authenticate" from "registry refused".

The signing key is made fresh on every start. Its self-signed certificate is written to
--cert-out for the registry's `rootcertbundle`; the JWT header names the key by its libtrust
key id (`kid`), which is how distribution finds the key among the bundle's certificates.

Configuration comes from the environment (BERTH_TOKEN_USER, BERTH_TOKEN_PASSWORD,
BERTH_TOKEN_ISSUER, BERTH_TOKEN_SERVICE) so that the password is not visible in `ps`.
Once listening, the server prints `PORT <n>` on stdout: binding port 0 here avoids racing
with other tests for a free port.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

TOKEN_LIFETIME = 300


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def libtrust_key_id(public_key):
    """Key id as docker/libtrust computes it: base32 of the first 240 bits of
    SHA-256(DER SubjectPublicKeyInfo), in colon-separated groups of four."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def make_key_and_cert(cert_path, issuer):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    # Written to a temporary name first: the registry must never read half a certificate.
    tmp = cert_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    os.rename(tmp, cert_path)
    return key


def sign_es256(key, signing_input):
    der = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    # JWS wants the raw 64-byte r||s form, not the DER structure OpenSSL produces.
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def parse_scope(scope):
    """`repository:name/with/slashes:pull,push` -> access entry. Split on the first and
    last colon only, so a name that contains ':' still parses."""
    first = scope.find(":")
    last = scope.rfind(":")
    if first < 0 or last == first:
        return None
    actions = [a for a in scope[last + 1 :].split(",") if a]
    return {"type": scope[:first], "name": scope[first + 1 : last], "actions": actions}


class Handler(BaseHTTPRequestHandler):
    server_version = "berth-test-token/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("token-server: " + (fmt % args) + "\n")

    def authenticated_user(self):
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        cfg = self.server.cfg
        ok_user = hmac.compare_digest(user.encode(), cfg["user"].encode())
        ok_pass = hmac.compare_digest(password.encode(), cfg["password"].encode())
        return user if ok_user and ok_pass else None

    def reply(self, code, body, extra_headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def issue(self, params, user):
        cfg = self.server.cfg
        service = params.get("service", [cfg["service"]])[0]
        if service != cfg["service"]:
            return self.reply(400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]})
        access = []
        for scope_param in params.get("scope", []):
            # Several scopes may also arrive space-separated in one parameter.
            for scope in scope_param.split(" "):
                entry = parse_scope(scope)
                if entry is not None:
                    access.append(entry)
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "kid": cfg["kid"]}
        claims = {
            "iss": cfg["issuer"],
            "sub": user,
            "aud": service,
            "exp": now + TOKEN_LIFETIME,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        ).encode("ascii")
        token = signing_input.decode() + "." + b64url(sign_es256(cfg["key"], signing_input))
        issued_at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat()
        self.reply(
            200,
            {
                "token": token,
                "access_token": token,
                "expires_in": TOKEN_LIFETIME,
                "issued_at": issued_at,
            },
        )

    def unauthorized(self):
        self.reply(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": "valid credentials required"}]},
            [("WWW-Authenticate", 'Basic realm="berth-test-token"')],
        )

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
        user = self.authenticated_user()
        if user is None:
            return self.unauthorized()
        self.issue(urllib.parse.parse_qs(url.query), user)

    def do_POST(self):
        # OAuth2 password grant (what `docker login` style clients may use): credentials come
        # in the form body instead of a Basic header.
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        cfg = self.server.cfg
        user = self.authenticated_user()
        if user is None and form.get("grant_type", [""])[0] == "password":
            u = form.get("username", [""])[0]
            p = form.get("password", [""])[0]
            if hmac.compare_digest(u.encode(), cfg["user"].encode()) and hmac.compare_digest(
                p.encode(), cfg["password"].encode()
            ):
                user = u
        if user is None:
            return self.unauthorized()
        self.issue(form, user)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: token_server.py CERT_OUT")
    cfg = {
        "user": os.environ["BERTH_TOKEN_USER"],
        "password": os.environ["BERTH_TOKEN_PASSWORD"],
        "issuer": os.environ.get("BERTH_TOKEN_ISSUER", "berth-test-issuer"),
        "service": os.environ.get("BERTH_TOKEN_SERVICE", "berth-test-registry"),
    }
    cfg["key"] = make_key_and_cert(sys.argv[1], cfg["issuer"])
    cfg["kid"] = libtrust_key_id(cfg["key"].public_key())
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.cfg = cfg
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
