"""The operators' security commands: ``kubeupdate token``, ``policy`` and ``certs``.

- ``token create --id ID``: a new static token; its secret is shown once.
- ``policy check FILE``: does the file load, how kubeupdate reads it
  (normalised, as YAML that loads again), and its warnings.
- ``policy explain --policy FILE (--token-id ID | --token-claims JSON | --cert NAME)
  TARGET [IMAGE]``: which rule would allow the call, or what each rule says
  against it. Without IMAGE the call is a read, with one a write.
- ``certs create --dir DIR``, ``certs renew --dir DIR``, ``certs secrets --dir DIR``:
  the CA and certificates of the gateway-service link, and the Secrets deploy/
  mounts (kubeupdate/auth/certificates.py).

The policy stack (and with it aiohttp and cryptography) is imported by the
commands that use it, not by the parser, which every command line builds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kubeupdate.auth.tokens import create_token

if TYPE_CHECKING:
    from kubeupdate.auth.policy import Policy, Request
    from kubeupdate.caller import Caller

#: A DNS name (lower case labels), for --san (IP addresses are checked by ipaddress).
DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# Exit codes of `policy explain`: allowed, refused, the question itself is wrong.
ALLOWED, REFUSED, UNUSABLE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="make a new token: prints its secret once and the tokens-file entry"
    )
    create.add_argument("--id", required=True, dest="token_id", help="the token id (Basic user)")
    create.add_argument(
        "--expires",
        type=_expiry,
        help="expiry, ISO 8601 (e.g. 2027-01-31 or 2027-01-31T12:00:00Z); default: never",
    )
    create.set_defaults(run=run_create)


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="validate a policy file; print it normalised, with its warnings"
    )
    check.add_argument("file", type=Path, help="the policy file (YAML)")
    check.set_defaults(run=run_check)

    explain = actions.add_parser("explain", help="which rule would allow a call, or why none does")
    explain.add_argument("--policy", type=Path, required=True, help="the policy file (YAML)")
    who = explain.add_mutually_exclusive_group(required=True)
    who.add_argument("--token-id", help="the caller is this static token (Bearer or Basic)")
    who.add_argument(
        "--token-claims",
        help="the caller is a GitHub OIDC token with these claims (a JSON object, "
        "or @FILE to read one)",
    )
    who.add_argument("--cert", help="the caller is a client certificate with this CN or SAN")
    explain.add_argument("target", help="NAMESPACE/DEPLOYMENT[/CONTAINER]")
    explain.add_argument("image", nargs="?", help="the new image of a write; none for a read")
    explain.set_defaults(run=run_explain)


def add_certificate_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="a new CA in DIR, and the service's and the gateway's certificates"
    )
    renew = actions.add_parser(
        "renew", help="new keys and certificates for both, signed by the CA already in DIR"
    )
    secrets = actions.add_parser(
        "secrets", help="print the two Secrets deploy/ mounts (for kubectl apply -f -)"
    )
    # The defaults repeat certificates.py's (a test holds them equal): that module, and
    # cryptography with it, loads only when a certs command runs.
    for action in (create, renew, secrets):
        action.add_argument("--dir", type=Path, required=True, help="the operator's directory")
        action.add_argument(
            "--namespace",
            default=None if action is renew else "kubeupdate",
            help="the namespace of the service and its Secrets (default: "
            + ("the names the service's certificate has" if action is renew else "%(default)s")
            + ")",
        )
    for action in (create, renew):
        action.add_argument(
            "--san",
            action="append",
            default=[],
            metavar="NAME",
            help="another DNS name or IP address the service is called by; repeatable",
        )
        action.add_argument(
            "--days",
            type=int,
            default=365,
            help="how long the certificates are valid (default: %(default)s)",
        )
    create.add_argument(
        "--ca-days",
        type=int,
        default=3650,
        help="how long the CA is valid (default: %(default)s)",
    )
    secrets.add_argument(
        "--also-trust",
        type=Path,
        metavar="CA_FILE",
        help="trust this CA's certificates too (while a CA is replaced)",
    )
    create.set_defaults(run=run_certs_create)
    renew.set_defaults(run=run_certs_renew)
    secrets.set_defaults(run=run_certs_secrets)


def _expiry(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def run_create(args: argparse.Namespace) -> int:
    try:
        secret, entry = create_token(args.token_id, args.expires)
    except ValueError as exc:
        print(f"kubeupdate token create: {exc}", file=sys.stderr)
        return 2
    print(
        f"""Secret of token {entry.id} (shown only now; keep it in a secret store):

  {secret}

Add this entry under 'tokens:' in the tokens file (--tokens-file); the service
reloads it on change or SIGHUP:

{entry.entry_yaml()}
Use it as:   curl -u '{entry.id}:SECRET' ...
        or   curl -H 'Authorization: Bearer SECRET' ...
and grant it targets in the policy file with 'subjects: [{{token: {entry.id}}}]'."""
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    policy = _load(args.file, "kubeupdate policy check")
    if policy is None:
        return 1
    count = len(policy.rules)
    print(f"# {args.file}: valid, {count} rule{'' if count == 1 else 's'}, as kubeupdate reads it")
    print(yaml.safe_dump(policy.to_document(), sort_keys=False, width=100), end="")
    for warning in policy.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def run_explain(args: argparse.Namespace) -> int:
    from kubeupdate.auth.policy import ALLOWED as RULE_ALLOWS
    from kubeupdate.auth.policy import NO_RULE_FOR_CALLER

    command = "kubeupdate policy explain"
    policy = _load(args.policy, command)
    if policy is None:
        return UNUSABLE
    try:
        caller = _caller(args)
        request = _request(args.target, args.image)
    except ValueError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return UNUSABLE
    image = f" with {args.image}" if args.image else ""
    print(f"{caller.name} asks to {request.access} {args.target}{image}")
    for rule, verdict in policy.explain(caller, request):
        if verdict == RULE_ALLOWS:
            said = "allows it"
        elif verdict == NO_RULE_FOR_CALLER:
            said = "does not name this caller"
        else:
            said = f"refuses: {verdict}"
        print(f"  {rule.name}: {said}")
    decision = policy.decide(caller, request)
    if decision.allowed:
        print(f"allowed by {decision.rule}")
        return ALLOWED
    print(f"refused; the caller is told: Permission denied: {decision.reason}.")
    return REFUSED


def run_certs_create(args: argparse.Namespace) -> int:
    return _certificates("create", args)


def run_certs_renew(args: argparse.Namespace) -> int:
    return _certificates("renew", args)


def run_certs_secrets(args: argparse.Namespace) -> int:
    return _certificates("secrets", args)


def _certificates(action: str, args: argparse.Namespace) -> int:
    from kubeupdate.auth import certificates

    command = f"kubeupdate certs {action}"
    try:
        _check_certificate_arguments(args)
        if action == "secrets":
            also_trust = args.also_trust.read_bytes() if args.also_trust else b""
            manifest = certificates.secrets(
                args.dir, namespace=args.namespace, also_trust=also_trust
            )
            print(manifest, end="")
            return 0
        if action == "create":
            names = certificates.create(
                args.dir,
                namespace=args.namespace,
                extra_names=args.san,
                days=args.days,
                ca_days=args.ca_days,
            )
        else:
            names = certificates.renew(
                args.dir, namespace=args.namespace, extra_names=args.san, days=args.days
            )
    except (certificates.CertificateError, ValueError, OSError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    namespace = args.namespace or certificates.NAMESPACE
    print(
        f"""{args.dir}: the service's certificate (for {", ".join(names)}) and the gateway's
({certificates.GATEWAY}), valid for {args.days} days; keep ca.key out of the cluster.
Install or replace them with:
  kubeupdate certs secrets --dir {args.dir} --namespace {namespace} | kubectl apply -f -
  kubectl -n {namespace} rollout restart deployment/{certificates.SERVICE} \\
      deployment/{certificates.GATEWAY}"""
    )
    return 0


def _check_certificate_arguments(args: argparse.Namespace) -> None:
    from kubeupdate.errors import InvalidArgument
    from kubeupdate.names import check_namespace

    try:
        if args.namespace is not None:
            check_namespace(args.namespace)
    except InvalidArgument as exc:
        raise ValueError(exc.message) from None
    for name in getattr(args, "san", ()):
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if len(name) > 253 or not DNS_NAME.fullmatch(name):
                raise ValueError(
                    f"--san {name!r} is neither a DNS name nor an IP address"
                ) from None
    for flag in ("days", "ca_days"):
        if getattr(args, flag, 1) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1")


def _load(path: Path, command: str) -> Policy | None:
    from kubeupdate.auth.policy import PolicyError, parse_policy

    try:
        with path.open(encoding="utf-8") as stream:
            return parse_policy(yaml.safe_load(stream), base=path.parent)
    except (OSError, yaml.YAMLError, PolicyError) as exc:
        print(f"{command}: {path}: {exc}", file=sys.stderr)
        return None


def _caller(args: argparse.Namespace) -> Caller:
    from kubeupdate.caller import Caller

    if args.token_id is not None:
        return Caller(f"token:{args.token_id}", "token", {"token_id": args.token_id})
    if args.cert is not None:
        return Caller(f"cert:{args.cert}", "mtls", {"common_name": args.cert, "sans": ""})
    from kubeupdate.auth.oidc import caller_from_claims

    text = args.token_claims
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        claims: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--token-claims is not JSON: {exc}") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("repository"), str):
        raise ValueError("--token-claims must be a JSON object with at least 'repository'")
    return caller_from_claims(claims)


def _request(target: str, image: str | None) -> Request:
    from kubeupdate.auth.policy import Request
    from kubeupdate.errors import InvalidArgument
    from kubeupdate.targets import check_target

    parts = target.split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"the target {target!r} is not NAMESPACE/DEPLOYMENT[/CONTAINER]")
    try:
        checked = check_target(parts[0], parts[1], parts[2] if len(parts) == 3 else None, image)
    except InvalidArgument as exc:
        raise ValueError(exc.message) from None
    return Request(
        "write" if image is not None else "read",
        checked.namespace,
        checked.name,
        checked.container,
        checked.image,
    )
