"""``kubeupdate token create``: a new static token, its secret shown once."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from kubeupdate.auth.tokens import create_token


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
