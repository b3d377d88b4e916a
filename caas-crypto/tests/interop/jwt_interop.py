#!/usr/bin/env python3
"""Independent JWT implementation (PyJWT) for caas-crypto's interop test.

Reads one JSON request on stdin and writes one JSON response on stdout.

Requests:
  {"op": "verify", "token": T, "audience": A, "issuer": I,
   "secret": <base64url HS256 secret>}            -> HS256 with the shared secret
  {"op": "verify", "token": T, "audience": A, "issuer": I,
   "jwks": <JWKS document>}                        -> EdDSA, key chosen by kid
  {"op": "sign", "alg": "HS256", "kid": K, "secret": <base64url>, "claims": C}
  {"op": "sign", "alg": "EdDSA", "kid": K, "claims": C}  -> fresh key; returns its public JWK
  {"op": "sign", "alg": "none", "kid": K, "claims": C}   -> an unsigned token (for negative tests)

Responses: {"ok": true, ...} or {"ok": false, "error": <exception class>, "detail": <message>}.
"""

import base64
import json
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify(req):
    token = req["token"]
    if "secret" in req:
        key, algorithms = b64url_decode(req["secret"]), ["HS256"]
    else:
        header = jwt.get_unverified_header(token)
        jwk_set = jwt.PyJWKSet.from_dict(req["jwks"])
        key, algorithms = jwk_set[header["kid"]], ["EdDSA"]
    claims = jwt.decode(
        token,
        key=key,
        algorithms=algorithms,
        audience=req["audience"],
        issuer=req["issuer"],
        options={"require": ["exp", "iat", "iss", "sub", "aud"]},
    )
    return {"claims": claims}


def sign(req):
    alg, headers = req["alg"], {"kid": req["kid"]}
    if alg == "HS256":
        token = jwt.encode(req["claims"], b64url_decode(req["secret"]), algorithm="HS256", headers=headers)
        return {"token": token}
    if alg == "EdDSA":
        private = Ed25519PrivateKey.generate()
        token = jwt.encode(req["claims"], private, algorithm="EdDSA", headers=headers)
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
        jwk.update({"kid": req["kid"], "alg": "EdDSA", "use": "sig"})
        return {"token": token, "jwk": jwk}
    if alg == "none":
        return {"token": jwt.encode(req["claims"], None, algorithm="none", headers=headers)}
    raise ValueError(f"unknown alg {alg}")


def main():
    req = json.load(sys.stdin)
    try:
        result = {"verify": verify, "sign": sign}[req["op"]](req)
        result["ok"] = True
    except jwt.PyJWTError as e:
        result = {"ok": False, "error": type(e).__name__, "detail": str(e)}
    result["pyjwt"] = jwt.__version__
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
