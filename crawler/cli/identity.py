"""``polite-crawl identity init|show|rotate``: the crawler's Ed25519 signing key."""

from __future__ import annotations

import argparse
import json
import time

from crawler.cli.common import UsageError
from crawler.identity.keys import (
    IdentityError,
    generate_key,
    jwks,
    load_key,
    retired_keys_path,
    rotate_key,
)


def register(sub: argparse._SubParsersAction) -> None:
    ident = sub.add_parser("identity", help="the crawler's signing key (Ed25519)")
    isub = ident.add_subparsers(dest="identity_command", metavar="SUBCOMMAND")
    init = isub.add_parser("init", help="create a new key (mode 0600; never overwrites)")
    init.add_argument("--out", required=True, metavar="PATH", help="the key file to create")
    show = isub.add_parser("show", help="print the public key directory (JWK Set) of a key")
    show.add_argument("key", metavar="PATH", help="a key file made by identity init")
    rotate = isub.add_parser("rotate", help="replace the key with a new one; the old public key "
                             "stays in the key directory for a grace period")
    rotate.add_argument("key", metavar="PATH", help="the key file to rotate (identity.key_file)")
    rotate.add_argument("--grace", type=float, default=7.0, metavar="DAYS",
                        help="days the old key stays published (default 7)")
    init.set_defaults(func=cmd_identity_init)
    show.set_defaults(func=cmd_identity_show)
    rotate.set_defaults(func=cmd_identity_rotate)


def cmd_identity_init(args: argparse.Namespace) -> int:
    try:
        ident = generate_key(args.out)
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    print(f"polite-crawl: key {ident.keyid} written to {args.out} (mode 0600); name it in the "
          f"job config as identity: {{key_file: {args.out}}} and keep it private")
    return 0


def cmd_identity_show(args: argparse.Namespace) -> int:
    try:
        ident = load_key(args.key)
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(jwks([ident.jwk]), indent=2, sort_keys=True))
    return 0


def cmd_identity_rotate(args: argparse.Namespace) -> int:
    if not args.grace >= 0:
        raise UsageError("--grace: a number of days >= 0")
    try:
        new, old = rotate_key(args.key, now=time.time(), grace=args.grace * 86400)
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    print(f"polite-crawl: key {new.keyid} now in {args.key}; {old} retired (listed in "
          f"{retired_keys_path(args.key)}, published {args.grace:g} more days; its private "
          f"key moved to {args.key}.retired-{old}: destroy it when nothing needs it). Run "
          "polite-crawl about to publish the new directory")
    return 0
