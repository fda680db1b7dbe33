"""Security of the gRPC service: who is calling, what they may do, what they did.

authorization.py  the Authorization metadata: Bearer and HTTP Basic
tokens.py         static tokens: secrets, salted hashes, the tokens file
jws.py            RS256 JWT signature checking (nothing else accepted)
oidc.py           GitHub Actions OIDC: claims, JWKS discovery and cache
mtls.py           TLS server credentials, client certificate identities
authenticator.py  credentials -> Caller
policy.py         the policy file: subjects, targets, access, image rules
reloading.py      files re-read on change or SIGHUP
ratelimit.py      per-identity token buckets
audit.py          one JSON line per attempt
interceptor.py    the gRPC interceptor tying them together
config.py         flags, settings, and the running whole for serve()
"""
