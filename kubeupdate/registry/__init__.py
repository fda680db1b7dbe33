"""Container registries: does an image exist, for which platforms, signed by whom (issue 15).

Layers, from the entry point down:

- ``verifier``     :class:`ImageVerifier` ``.check(image, requirements) -> VerifiedImage``
- ``resolution``   tag → digest with single-flight and a short cache; content LRUs
- ``signatures``   cosign's signature tag and sigstore bundles, verified offline
- ``platforms``    ``os/arch[/variant]`` parsing and matching
- ``manifests``    OCI / Docker manifests and indexes
- ``client``       the distribution API over aiohttp: auth challenge, TLS, retries
- ``challenges``   ``WWW-Authenticate`` parsing
- ``credentials``  the operator's Docker ``config.json``, reloaded on change
- ``hosts``        per-registry CA file and plain HTTP for loopback registries
- ``endpoints``    Docker Hub's aliases, in one place
- ``errors``       this package's error tree
- ``translation``  those errors as domain errors (the boundary, as ``kube.translation``)
- ``config``       the ``--registry-*`` flags of ``kubeupdate serve``, and the verifier
                   they build

Nothing here imports gRPC, the policy or Kubernetes. The set path
(:mod:`kubeupdate.image_checks`) calls :meth:`ImageVerifier.check` before any
Kubernetes call and raises :func:`~kubeupdate.registry.translation.translate_error`'s
domain errors. This ``__init__`` imports nothing, so that reading the flags
(``config``) or a policy's platforms and keys does not load aiohttp.

Keyless signatures are verified against a CA the operator names (a private
Fulcio), at the time of the check. The public Sigstore instance issues
10-minute certificates whose signing time is proven by the transparency log
(Rekor) and whose issuance by SCTs; verifying those is what sigstore-python
(``sigstore`` on PyPI) does, and is the follow-up for public-good keyless
signatures: its ``Verifier`` requires exactly that log entry and SCT, so it
cannot verify the log-less bundles of a private CA that this package accepts.
"""
