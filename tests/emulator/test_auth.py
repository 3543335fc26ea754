"""Entra ID token endpoint and bearer checks (emu_auth).

Client secret (form and HTTP Basic), certificate assertions (RS256 + x5t,
PS256 + x5t#S256, signed here with the openssl command), every documented
rejection, and 401 from the Web API for missing, unknown and expired
tokens.
"""

import base64
import hashlib
import json
import os
import subprocess
import tempfile
import time
import unittest
import uuid

from emu_testlib import NUMBERS, EmulatorTest
from launcher import CLIENT_ID, CLIENT_SECRET, TENANT

CERT_CLIENT = "ce47c0de-0000-4000-8000-000000000003"
SECRET_CLIENT = "5ec7c0de-0000-4000-8000-000000000004"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_cert(directory, name):
    key = os.path.join(directory, name + ".key")
    cert = os.path.join(directory, name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=" + name], check=True,
                   capture_output=True)
    with open(cert) as f:
        body = f.read().split("-----BEGIN CERTIFICATE-----")[1]
    der = base64.b64decode("".join(body.split("-----END")[0].split()))
    return key, cert, der


def sign(key, alg, data):
    cmd = ["openssl", "dgst", "-sha256", "-sign", key]
    if alg == "PS256":
        cmd += ["-sigopt", "rsa_padding_mode:pss",
                "-sigopt", "rsa_pss_saltlen:-1"]
    return subprocess.run(cmd, input=data, capture_output=True,
                          check=True).stdout


class SecretTest(EmulatorTest):
    args = ["--client", SECRET_CLIENT + ":second-secret"]

    def test_secret_in_form(self):
        r = self.token_request(self.secret_form())
        self.assertEqual(r.status, 200, r)
        doc = r.json
        self.assertEqual(doc["token_type"], "Bearer")
        self.assertEqual(doc["expires_in"], 3599)
        self.assertIsInstance(doc["expires_in"], int)
        self.assertEqual(doc["ext_expires_in"], 3599)
        self.assertIsInstance(doc["access_token"], str)
        self.assertIn("no-store", r.headers["Cache-Control"])
        ok = self.get(NUMBERS, token=doc["access_token"])
        self.assertEqual(ok.status, 200)

    def test_secret_in_basic_header(self):
        cred = base64.b64encode(("%s:%s" % (CLIENT_ID, CLIENT_SECRET))
                                .encode()).decode()
        form = self.secret_form(client_secret=None, client_id=None)
        r = self.token_request(form, headers={"Authorization":
                                              "Basic " + cred})
        self.assertEqual(r.status, 200, r)

    def test_extra_client_from_flag(self):
        r = self.token_request(self.secret_form(
            client_id=SECRET_CLIENT, client_secret="second-secret"))
        self.assertEqual(r.status, 200, r)

    def test_localhost_scope_accepted(self):
        scope = "http://localhost:%d/.default" % self.emu.port
        self.assertEqual(self.token_request(
            self.secret_form(scope=scope)).status, 200)

    def test_bad_secret_is_401(self):
        r = self.token_request(self.secret_form(client_secret="wrong"))
        self.assertAadError(r, 401, "invalid_client", 7000215)

    def test_unknown_client(self):
        r = self.token_request(self.secret_form(client_id=str(uuid.uuid4())))
        self.assertAadError(r, 400, "unauthorized_client", 700016)

    def test_wrong_tenant(self):
        r = self.token_request(self.secret_form(), tenant=str(uuid.uuid4()))
        self.assertAadError(r, 400, "invalid_request", 90002)
        r = self.token_request(self.secret_form(), tenant="not_a_tenant")
        self.assertAadError(r, 400, "invalid_request", 900023)

    def test_scope_of_another_resource(self):
        for scope in ("https://contoso.crm4.dynamics.com/.default",
                      "http://127.0.0.1:1/.default",
                      self.emu.base_url + "//.default"):
            r = self.token_request(self.secret_form(scope=scope))
            self.assertAadError(r, 400, "invalid_resource", 500011)

    def test_bad_scope(self):
        r = self.token_request(self.secret_form(
            scope=self.emu.base_url + "/user_impersonation"))
        self.assertAadError(r, 400, "invalid_scope", 1002012)
        r = self.token_request(self.secret_form(
            scope=self.emu.base_url + "/.default offline_access"))
        self.assertAadError(r, 400, "invalid_scope", 70011)
        r = self.token_request(self.secret_form(scope="/.default"))
        self.assertAadError(r, 400, "invalid_scope", 70011)

    def test_missing_parameters(self):
        for field in ("grant_type", "client_id", "scope"):
            r = self.token_request(self.secret_form(**{field: None}))
            doc = self.assertAadError(r, 400, "invalid_request", 900144)
            self.assertIn("'%s'" % field, doc["error_description"])

    def test_json_body_is_not_a_form(self):
        r = self.token_request(None, raw=json.dumps(self.secret_form()),
                               headers={"Content-Type": "application/json"})
        doc = self.assertAadError(r, 400, "invalid_request", 900144)
        self.assertIn("'grant_type'", doc["error_description"])

    def test_unsupported_grant(self):
        r = self.token_request(self.secret_form(grant_type="password"))
        self.assertAadError(r, 400, "unsupported_grant_type", 70003)

    def test_no_credential(self):
        r = self.token_request(self.secret_form(client_secret=None))
        self.assertAadError(r, 401, "invalid_client", 7000218)

    def test_get_is_refused(self):
        r = self.emu.request("GET", "/%s/oauth2/v2.0/token" % TENANT)
        self.assertEqual(r[0], 400)
        self.assertEqual(json.loads(r[2])["error_codes"], [900561])

    def test_counts_tokens(self):
        _, before = self.control("GET", "counters")
        self.token_request(self.secret_form())
        _, after = self.control("GET", "counters")
        self.assertEqual(after["tokens_issued"], before["tokens_issued"] + 1)


class BearerTest(EmulatorTest):
    def test_missing_authorization(self):
        r = self.emu.request("GET", "/api/data/v9.2/" + NUMBERS)
        self.assertEqual(r[0], 401)
        self.assertIn("Bearer", r[1]["WWW-Authenticate"])

    def test_unknown_and_malformed_tokens(self):
        for value in ("Bearer not-a-token", "Basic abc", "Bearer",
                      self.tok):
            r = self.emu.request("GET", "/api/data/v9.2/" + NUMBERS,
                                 headers={"Authorization": value})
            self.assertEqual(r[0], 401, value)

    def test_expired_token_by_clock(self):
        token = self.emu.token()
        self.assertEqual(self.get(NUMBERS, token=token).status, 200)
        self.control("POST", "clock", {"advance": 3600})
        r = self.get(NUMBERS, token=token)
        self.assertODataError(r, 401, "0x8005F101")
        fresh = self.emu.token()
        self.assertEqual(self.get(NUMBERS, token=fresh).status, 200)

    def test_expire_tokens_now(self):
        token = self.emu.token()
        self.assertEqual(self.get(NUMBERS, token=token).status, 200)
        status, out = self.control("POST", "expire", {"access_tokens": True})
        self.assertEqual(status, 200)
        self.assertEqual(self.get(NUMBERS, token=token).status, 401)
        self.assertEqual(self.get(NUMBERS, token=self.emu.token()).status,
                         200)


class ShortLifetimeTest(EmulatorTest):
    args = ["--token-lifetime", "120"]
    seed = None

    def test_lifetime_flag(self):
        r = self.token_request(self.secret_form())
        self.assertEqual(r.json["expires_in"], 120)


class AssertionTest(EmulatorTest):
    seed = None

    @classmethod
    def extra_args(cls):
        cls.keydir = tempfile.mkdtemp(prefix="dvemu-cert-")
        cls.key, cls.cert, der = make_cert(cls.keydir, "good")
        cls.x5t = b64url(hashlib.sha1(der).digest())
        cls.x5t256 = b64url(hashlib.sha256(der).digest())
        cls.other_key, _, _ = make_cert(cls.keydir, "other")
        return ["--client-cert", "%s:%s" % (CERT_CLIENT, cls.cert)]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        for name in os.listdir(cls.keydir):
            os.unlink(os.path.join(cls.keydir, name))
        os.rmdir(cls.keydir)

    def assertion(self, alg="RS256", key=None, client=CERT_CLIENT,
                  header=None, **claims):
        now = int(time.time())
        hdr = {"alg": alg, "typ": "JWT"}
        if alg == "PS256":
            hdr["x5t#S256"] = self.x5t256
        else:
            hdr["x5t"] = self.x5t
        hdr.update(header or {})
        body = {"aud": "%s/%s/oauth2/v2.0/token" % (self.emu.base_url,
                                                    TENANT),
                "iss": client, "sub": client, "jti": str(uuid.uuid4()),
                "nbf": now, "iat": now, "exp": now + 600}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        signing = (b64url(json.dumps(hdr).encode()) + "." +
                   b64url(json.dumps(body).encode())).encode()
        sig = sign(key or self.key, alg if alg in ("RS256", "PS256")
                   else "RS256", signing)
        return signing.decode() + "." + b64url(sig)

    def request(self, assertion, client=CERT_CLIENT, **over):
        form = {"client_id": client, "grant_type": "client_credentials",
                "scope": self.emu.base_url + "/.default",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion}
        form.update(over)
        return self.token_request(form)

    def test_rs256_with_x5t(self):
        r = self.request(self.assertion("RS256"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.get(NUMBERS, token=r.json["access_token"])
                         .status, 200)

    def test_ps256_with_x5t_s256(self):
        r = self.request(self.assertion("PS256"))
        self.assertEqual(r.status, 200, r)

    def test_bad_signature(self):
        good = self.assertion()
        head, claims, sig = good.split(".")
        raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
        raw[10] ^= 0xFF
        r = self.request("%s.%s.%s" % (head, claims, b64url(bytes(raw))))
        self.assertAadError(r, 401, "invalid_client", 700027)
        r = self.request(self.assertion(key=self.other_key))
        self.assertAadError(r, 401, "invalid_client", 700027)
        r = self.request(self.assertion("PS256", key=self.other_key))
        self.assertAadError(r, 401, "invalid_client", 700027)

    def test_rs256_signature_sent_as_ps256(self):
        rs = self.assertion("RS256", header={"x5t#S256": self.x5t256})
        head, claims, sig = rs.split(".")
        hdr = json.loads(base64.urlsafe_b64decode(head + "=="))
        hdr["alg"] = "PS256"
        forged = b64url(json.dumps(hdr).encode()) + "." + claims + "." + sig
        self.assertAadError(self.request(forged), 401, "invalid_client",
                            700027)

    def test_unregistered_thumbprint(self):
        r = self.request(self.assertion(header={"x5t": b64url(b"x" * 20)}))
        self.assertAadError(r, 401, "invalid_client", 700027)

    def test_replayed_jti(self):
        assertion = self.assertion()
        self.assertEqual(self.request(assertion).status, 200)
        r = self.request(assertion)
        doc = self.assertAadError(r, 401, "invalid_client", 50027)
        self.assertIn("jti", doc["error_description"])

    def test_expired_and_not_yet_valid(self):
        now = int(time.time())
        r = self.request(self.assertion(exp=now - 60, nbf=now - 660))
        self.assertAadError(r, 401, "invalid_client", 700024)
        r = self.request(self.assertion(nbf=now + 300, exp=now + 900))
        self.assertAadError(r, 401, "invalid_client", 700024)
        r = self.request(self.assertion(exp=None))
        self.assertAadError(r, 401, "invalid_client", 50027)

    def test_audience(self):
        for aud in ("https://login.microsoftonline.com/%s/oauth2/v2.0/token"
                    % TENANT, self.emu.base_url + "/%s/v2.0/token" % TENANT):
            r = self.request(self.assertion(aud=aud))
            self.assertAadError(r, 401, "invalid_client", 50027)
        good = "%s/%s/oauth2/v2.0/token" % (self.emu.base_url, TENANT)
        r = self.request(self.assertion(aud=[good, good + "x"]))
        self.assertAadError(r, 401, "invalid_client", 5002741)
        self.assertEqual(self.request(self.assertion(aud=[good])).status, 200)

    def test_issuer_and_subject(self):
        other = str(uuid.uuid4())
        r = self.request(self.assertion(iss=other))
        self.assertAadError(r, 401, "invalid_client", 700021)
        r = self.request(self.assertion(sub=other))
        self.assertAadError(r, 401, "invalid_client", 700021)

    def test_missing_jti(self):
        r = self.request(self.assertion(jti=None))
        self.assertAadError(r, 401, "invalid_client", 50027)

    def test_algorithm(self):
        r = self.request(self.assertion("HS256"))
        self.assertAadError(r, 401, "invalid_client", 5002738)
        r = self.request(self.assertion("none"))
        self.assertAadError(r, 401, "invalid_client", 5002738)

    def test_assertion_type_and_shape(self):
        r = self.request(self.assertion(), client_assertion_type="jwt")
        self.assertAadError(r, 401, "invalid_client", 7000218)
        r = self.request("not.a.jwt!")
        self.assertAadError(r, 401, "invalid_client", 50027)

    def test_secret_for_certificate_client(self):
        r = self.token_request(self.secret_form(client_id=CERT_CLIENT,
                                                client_secret="guess"))
        self.assertAadError(r, 401, "invalid_client", 7000215)

    def test_assertion_for_secret_client(self):
        r = self.request(self.assertion(client=CLIENT_ID), client=CLIENT_ID)
        self.assertAadError(r, 401, "invalid_client", 700027)

    def test_secret_and_assertion_together(self):
        r = self.request(self.assertion(), client_secret="x")
        self.assertAadError(r, 400, "invalid_request", 900144)


class TlsTest(EmulatorTest):
    seed = "small"

    @classmethod
    def tls(cls):
        if not hasattr(cls, "keydir"):
            cls.keydir = tempfile.mkdtemp(prefix="dvemu-tls-")
            cls.key, cls.cert, _ = make_cert(cls.keydir, "localhost")
        return (cls.cert, cls.key)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        for name in os.listdir(cls.keydir):
            os.unlink(os.path.join(cls.keydir, name))
        os.rmdir(cls.keydir)

    def test_https_token_and_query(self):
        self.assertTrue(self.emu.base_url.startswith("https://"))
        token = self.emu.token()
        r = self.get(NUMBERS, [("$select", "inogic_name")], token=token)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["@odata.context"].startswith("https://"))

    def test_http_scope_is_another_resource(self):
        scope = "http://127.0.0.1:%d/.default" % self.emu.port
        r = self.token_request(self.secret_form(scope=scope))
        self.assertAadError(r, 400, "invalid_resource", 500011)


if __name__ == "__main__":
    unittest.main()
