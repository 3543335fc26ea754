"""Entra ID v2.0 token endpoint (client credentials) and bearer checks.

POST /{tenant}/oauth2/v2.0/token with a client secret (form field or HTTP
Basic) or a certificate assertion (private_key_jwt: RS256 + x5t or PS256 +
x5t#S256), verified with the `openssl` command. Requests, success and
error bodies follow Microsoft Learn's "Microsoft identity platform and the
OAuth 2.0 client credentials flow"
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow),
"... certificate credentials" (.../identity-platform/certificate-credentials)
and "Microsoft Entra authentication and authorization error codes"
(.../identity-platform/reference-error-codes). Every `invalid_client`
answers 401, as field reports show (the page's examples say 400); the other
errors 400. Access tokens are opaque random strings; the Web API accepts
them until they expire (emulated clock) or are expired by the control API.

Error codes used (AADSTS numbers; [U] = not documented by Microsoft, chosen
here):
  90002   invalid_request     tenant GUID unknown
  900023  invalid_request     tenant neither GUID nor DNS name
  900144  invalid_request     a required form field is missing
  900561  invalid_request     token endpoint called with GET [U status]
  70003   unsupported_grant_type
  700016  unauthorized_client client id not registered in the tenant
  7000218 invalid_client      neither secret nor assertion
  7000215 invalid_client      wrong secret
  50027   invalid_client      malformed assertion, bad aud, jti missing or
                              replayed [U for aud/jti]
  5002741 invalid_client      several audiences in the assertion
  5002738 invalid_client      unsupported signing algorithm
  700021  invalid_client      iss/sub differ from client_id
  700024  invalid_client      assertion outside its valid time range
  700027  invalid_client      key not registered / signature invalid
  70011   invalid_scope       malformed scope or more than one scope
  1002012 invalid_scope       scope without the /.default suffix
  500011  invalid_resource    well-formed X/.default for a resource that is
                              not this environment
"""

import base64
import binascii
import hashlib
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote_plus

from emu_util import HttpError, is_guid

DEFAULT_TENANT = "7e57e000-0000-4000-8000-000000000001"
DEFAULT_CLIENT = "0975c0de-0000-4000-8000-000000000002"
DEFAULT_SECRET = "optsync-emulator-secret"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url_decode(text):
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Client:
    def __init__(self, client_id, secret=None, cert=None):
        self.client_id = client_id.lower()
        self.secret = secret
        self.cert = cert            # CertKey or None


class CertKey:
    """A registered certificate: thumbprints and the public key file."""

    def __init__(self, pem_path, workdir):
        with open(pem_path, encoding="ascii") as f:
            pem = f.read()
        begin = "-----BEGIN CERTIFICATE-----"
        end = "-----END CERTIFICATE-----"
        if begin not in pem:
            raise ValueError("%s holds no PEM certificate" % pem_path)
        body = pem.split(begin, 1)[1].split(end, 1)[0]
        der = base64.b64decode("".join(body.split()))
        self.x5t = b64url(hashlib.sha1(der).digest())
        self.x5t_s256 = b64url(hashlib.sha256(der).digest())
        self.pubkey = os.path.join(workdir, "%s.pub.pem" % self.x5t_s256)
        out = subprocess.run(
            ["openssl", "x509", "-in", pem_path, "-pubkey", "-noout"],
            capture_output=True, check=True)
        with open(self.pubkey, "wb") as f:
            f.write(out.stdout)

    def verify(self, alg, signing_input, signature):
        """True when `signature` is valid for `signing_input` under alg."""
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(signature)
            sig_path = f.name
        try:
            cmd = ["openssl", "dgst", "-sha256", "-verify", self.pubkey,
                   "-signature", sig_path]
            if alg == "PS256":
                cmd += ["-sigopt", "rsa_padding_mode:pss",
                        "-sigopt", "rsa_pss_saltlen:-1"]
            res = subprocess.run(cmd, input=signing_input,
                                 capture_output=True)
            return res.returncode == 0
        finally:
            os.unlink(sig_path)


class AadError(Exception):
    def __init__(self, error, code, description, status=None):
        super().__init__(description)
        self.error = error
        self.code = code
        self.description = description
        self.status = status or (401 if error == "invalid_client" else 400)


class Token:
    __slots__ = ("client_id", "expires", "revoked", "audience")

    def __init__(self, client_id, expires, audience):
        self.client_id = client_id
        self.expires = expires
        self.revoked = False
        self.audience = audience


class Auth:
    def __init__(self, clock, tenant=DEFAULT_TENANT, lifetime=3599):
        self.clock = clock
        self.tenant = tenant.lower()
        self.lifetime = int(lifetime)
        self.clients = {}
        self.tokens = {}
        self.jtis = {}
        self.issued = 0
        self.lock = threading.Lock()
        self.workdir = tempfile.mkdtemp(prefix="dvemu-keys-")
        self.add_client(DEFAULT_CLIENT, secret=DEFAULT_SECRET)

    def add_client(self, client_id, secret=None, cert_path=None):
        if not is_guid(client_id):
            raise ValueError("client id %r is not a GUID" % client_id)
        cert = CertKey(cert_path, self.workdir) if cert_path else None
        client = self.clients.get(client_id.lower()) or Client(client_id)
        if secret is not None:
            client.secret = secret
        if cert is not None:
            client.cert = cert
        self.clients[client.client_id] = client
        return client

    def close(self):
        for name in os.listdir(self.workdir):
            os.unlink(os.path.join(self.workdir, name))
        os.rmdir(self.workdir)

    # -- token endpoint ----------------------------------------------------
    def token_endpoint(self, tenant, method, headers, body, origins,
                       request_origin):
        """Returns (status, headers, body bytes)."""
        try:
            if method != "POST":
                raise AadError("invalid_request", 900561,
                               "The endpoint only accepts POST, OPTIONS "
                               "requests. Received a %s request." % method)
            client_id, expires_in, token = self._issue(
                tenant, headers, body, origins, request_origin)
        except AadError as e:
            return e.status, _no_cache(), self._error_body(e, request_origin)
        doc = {"token_type": "Bearer", "expires_in": expires_in,
               "ext_expires_in": expires_in, "access_token": token}
        return 200, _no_cache(), json.dumps(doc).encode()

    def _error_body(self, e, origin):
        ts = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        desc = ("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\n"
                "Timestamp: %s" % (e.code, e.description, trace, corr, ts))
        doc = {"error": e.error, "error_description": desc,
               "error_codes": [e.code], "timestamp": ts, "trace_id": trace,
               "correlation_id": corr,
               "error_uri": "%s/error?code=%d" % (origin, e.code)}
        return json.dumps(doc).encode()

    def _check_tenant(self, tenant):
        if tenant.lower() == self.tenant:
            return
        if is_guid(tenant) or "." in tenant:
            raise AadError("invalid_request", 90002,
                           "Tenant '%s' not found. Check to make sure you "
                           "have the correct tenant ID and are signing into "
                           "the correct cloud." % tenant)
        raise AadError("invalid_request", 900023,
                       "Specified tenant identifier '%s' is neither a valid "
                       "DNS name, nor a valid external domain." % tenant)

    def _form(self, headers, body):
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype.lower() != "application/x-www-form-urlencoded":
            return {}
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return {k: v[0] for k, v in
                parse_qs(text, keep_blank_values=True).items()}

    def _basic(self, headers):
        auth = headers.get("Authorization")
        if not auth:
            return None
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            raw = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise AadError("invalid_request", 900144, "The request body "
                           "must contain the following parameter: "
                           "'client_id'.") from None
        cid, sep, secret = raw.partition(":")
        if not sep:
            raise AadError("invalid_client", 7000218, "The request body "
                           "must contain the following parameter: "
                           "'client_assertion' or 'client_secret'.")
        return unquote_plus(cid), unquote_plus(secret)

    def _issue(self, tenant, headers, body, origins, request_origin):
        self._check_tenant(tenant)
        form = self._form(headers, body)
        basic = self._basic(headers)
        if not form.get("grant_type"):
            raise _missing("grant_type")
        if form["grant_type"] != "client_credentials":
            raise AadError("unsupported_grant_type", 70003,
                           "The app requested an unsupported grant type "
                           "'%s'." % form["grant_type"])
        client_id = form.get("client_id") or (basic[0] if basic else None)
        if not client_id:
            raise _missing("client_id")
        if basic and form.get("client_id") and \
                form["client_id"].lower() != basic[0].lower():
            raise AadError("invalid_request", 900144, "The client_id in the "
                           "request body does not match the one in the "
                           "Authorization header.")
        if not form.get("scope"):
            raise _missing("scope")
        client = self.clients.get(client_id.lower()) if is_guid(client_id) \
            else None
        if client is None:
            raise AadError("unauthorized_client", 700016,
                           "Application with identifier '%s' was not found "
                           "in the directory '%s'. This can happen if the "
                           "application has not been installed by the "
                           "administrator of the tenant." % (client_id,
                                                             tenant))
        self._authenticate(client, form, basic, tenant, request_origin)
        audience = self._check_scope(form["scope"], origins)
        token = "dvemu." + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = Token(client.client_id,
                                       self.clock.now() + self.lifetime,
                                       audience)
            self.issued += 1
        return client.client_id, self.lifetime, token

    def _authenticate(self, client, form, basic, tenant, origin):
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if basic and secret is not None:
            raise AadError("invalid_request", 900144, "The client secret "
                           "was given both in the body and in the "
                           "Authorization header; use one.")
        if basic:
            secret = basic[1]
        if secret is not None and assertion is not None:
            raise AadError("invalid_request", 900144, "Only one client "
                           "credential may be sent: 'client_secret' or "
                           "'client_assertion'.")
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise AadError("invalid_client", 7000218, "The request body "
                               "must contain the following parameter: "
                               "'client_assertion_type' with value '%s'."
                               % ASSERTION_TYPE)
            self._check_assertion(client, assertion, tenant, origin)
            return
        if secret is None:
            raise AadError("invalid_client", 7000218, "The request body "
                           "must contain the following parameter: "
                           "'client_assertion' or 'client_secret'.")
        if client.secret is None or not secrets.compare_digest(
                secret.encode(), client.secret.encode()):
            raise AadError("invalid_client", 7000215,
                           "Invalid client secret provided. Ensure the "
                           "secret being sent in the request is the client "
                           "secret value, not the client secret ID, for a "
                           "secret added to app '%s'." % client.client_id)

    def _check_assertion(self, client, assertion, tenant, origin):
        header, claims, signing_input, sig = _split_jwt(assertion)
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            raise AadError("invalid_client", 5002738, "Invalid JWT token. "
                           "'%s' is not a supported signature algorithm."
                           % alg)
        cert = client.cert
        x5t, x5t256 = header.get("x5t"), header.get("x5t#S256")
        if x5t is None and x5t256 is None:
            raise _bad_jwt("The assertion header has neither 'x5t' nor "
                           "'x5t#S256'.")
        if cert is None or (x5t is not None and x5t != cert.x5t) or (
                x5t256 is not None and x5t256 != cert.x5t_s256):
            raise AadError("invalid_client", 700027,
                           "The certificate with identifier used to sign "
                           "the client assertion is not registered on "
                           "application. [Reason - The key was not found., "
                           "Thumbprint of key used by client: '%s']"
                           % (x5t or x5t256))
        if not cert.verify(alg, signing_input, sig):
            raise AadError("invalid_client", 700027, "Client assertion "
                           "failed signature validation.")
        self._check_claims(client, claims, tenant, origin)

    def _check_claims(self, client, claims, tenant, origin):
        aud = claims.get("aud")
        if isinstance(aud, list):
            if len(aud) != 1:
                raise AadError("invalid_client", 5002741,
                               "Number of audience values in the provided "
                               "client credential exceed maximum allowed. "
                               "%d audience values provided, maximum "
                               "allowed is 1." % len(aud))
            aud = aud[0]
        expected = "%s/%s/oauth2/v2.0/token" % (origin, tenant)
        if aud != expected:
            raise _bad_jwt("Invalid audience '%s'; expected the token "
                           "endpoint '%s'." % (aud, expected))
        if claims.get("iss") != claims.get("sub") or \
                str(claims.get("iss", "")).lower() != client.client_id:
            raise AadError("invalid_client", 700021, "Client assertion "
                           "application identifier doesn't match "
                           "'client_id' parameter.")
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, (int, float)) or (
                nbf is not None and not isinstance(nbf, (int, float))):
            raise _bad_jwt("The assertion must carry numeric 'exp' (and "
                           "'nbf') claims.")
        now = time.time()   # the client signs with the real clock
        if exp <= now or (nbf is not None and nbf > now):
            raise AadError("invalid_client", 700024,
                           "Client assertion is not within its valid time "
                           "range. Current time: %s, assertion valid from "
                           "%s, expiry time of assertion %s." % (
                               _iso(now), _iso(nbf or 0), _iso(exp)))
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _bad_jwt("The assertion has no 'jti' claim.")
        with self.lock:
            for key in [k for k, v in self.jtis.items() if v < now]:
                del self.jtis[key]
            key = (client.client_id, jti)
            if key in self.jtis:
                raise _bad_jwt("The client assertion's 'jti' %r was "
                               "already used (replay)." % jti)
            self.jtis[key] = exp

    @staticmethod
    def _check_scope(scope, origins):
        parts = scope.split()
        if len(parts) != 1:
            raise AadError("invalid_scope", 70011, "The provided value for "
                           "the input parameter 'scope' isn't valid. The "
                           "scope %s isn't valid. Client credential flows "
                           "take exactly one '<resource>/.default' scope."
                           % scope)
        scope = parts[0]
        if not scope.endswith("/.default"):
            raise AadError("invalid_scope", 1002012, "The provided value "
                           "for scope %s is not valid. Client credential "
                           "flows must have a scope value with /.default "
                           "suffixed to the resource identifier "
                           "(application ID URI)." % scope)
        resource = scope[:-len("/.default")]
        if resource not in origins:
            if "://" not in resource or not resource:
                raise AadError("invalid_scope", 70011, "The provided value "
                               "for the input parameter 'scope' isn't "
                               "valid. The scope %s isn't valid." % scope)
            raise AadError("invalid_resource", 500011,
                           "The resource principal named %s was not found "
                           "in the tenant. This can happen if the "
                           "application has not been installed by the "
                           "administrator of the tenant or consented to by "
                           "any user in the tenant." % resource)
        return resource

    # -- Web API side ------------------------------------------------------
    def bearer(self, header):
        """Client id of a valid bearer token; raises HttpError 401."""
        if not header:
            raise _unauthorized(None)
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized(None)
        with self.lock:
            tok = self.tokens.get(token)
            if tok is None:
                raise _unauthorized(None)
            if tok.revoked or tok.expires <= self.clock.now():
                raise _unauthorized("expired")
            return tok.client_id

    def expire_tokens(self):
        with self.lock:
            for tok in self.tokens.values():
                tok.revoked = True
            return len(self.tokens)


def _no_cache():
    return [("Content-Type", "application/json; charset=utf-8"),
            ("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")]


def _missing(field):
    return AadError("invalid_request", 900144, "The request body must "
                    "contain the following parameter: '%s'." % field)


def _bad_jwt(detail):
    return AadError("invalid_client", 50027,
                    "JWT token is invalid or malformed. " + detail)


def _iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(epoch))


def _split_jwt(assertion):
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _bad_jwt("The assertion is not a compact JWS.")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        sig = b64url_decode(parts[2])
    except (ValueError, binascii.Error):
        raise _bad_jwt("The assertion parts are not base64url JSON.") \
            from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _bad_jwt("The assertion header and claims must be objects.")
    return header, claims, (parts[0] + "." + parts[1]).encode("ascii"), sig


def _unauthorized(reason):
    """401 from the Web API. An expired token gets Dataverse's JSON error;
    a missing or unknown one an empty body (seen in the field:
    https://github.com/davidmoten/odata-client/issues/45)."""
    headers = [("WWW-Authenticate", 'Bearer error="invalid_token"')]
    if reason == "expired":
        body = json.dumps({"error": {
            "code": "0x8005F101",
            "message": "The access token has expired; request a new one "
                       "(AccessTokenExpired)."}}).encode()
        return HttpError(401, body, headers,
                         "application/json; odata.metadata=minimal")
    return HttpError(401, b"", headers)
