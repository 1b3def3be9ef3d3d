"""`python -m imdbclf services up|down|env|add-user` (`make services`): the command line of `services`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imdbclf.errors import UserError, exit_on_user_error
from imdbclf.ops import services
from imdbclf.ops.services import DATABASES, TUNING_ROLE, Config, add_member, down, endpoints, up


def _services_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m imdbclf services", description=services.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "env", "add-user"],
                        help="up: start and print the exports; down: stop; env: print the exports again (of "
                             "NAME, if given); add-user NAME: a team member's login, and the exports they paste")
    parser.add_argument("name", nargs="?", help="the member, for add-user and env")
    parser.add_argument("--read-only", action="store_true",
                        help="add-user: a login that reads runs and models but writes nothing")
    defaults = Config()
    parser.add_argument("--dir", type=Path, default=defaults.root,
                        help="where the services keep their state (default: %(default)s)")
    parser.add_argument("--host", default=defaults.host,
                        help="the address to bind to, named by the URLs (default: %(default)s)")
    parser.add_argument("--pg-port", type=int, default=defaults.pg_port, help="(default: %(default)s)")
    parser.add_argument("--mlflow-port", type=int, default=defaults.mlflow_port, help="(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="mlflow server worker processes (default: %(default)s)")
    parser.add_argument("--os-user", default=defaults.os_user,
                        help="the user that runs PostgreSQL when started as root (default: %(default)s)")
    parser.add_argument("--tls", choices=["auto", "on", "off"], default=defaults.tls,
                        help="TLS for both services; auto: on unless bound to loopback (default: %(default)s)")
    parser.add_argument("--tls-files", nargs=3, type=Path, metavar=("CA", "CERT", "KEY"),
                        help="the team's own CA certificate, server certificate and key (default: made in DIR/tls)")
    parser.add_argument("--member", default=defaults.member,
                        help="up: the member whose login the exports carry (default: %(default)s)")
    return parser


@exit_on_user_error
def run_services_cli(argv: list[str] | None = None) -> None:
    args = _services_parser().parse_args(argv)
    config = Config(args.dir, args.host, args.pg_port, args.mlflow_port, args.workers, args.os_user, tls=args.tls,
                    tls_files=tuple(args.tls_files) if args.tls_files else None, member=args.member)
    if args.action == "down":
        down(config)
        print(f"services in {config.root} stopped (their data stay there)")
        return
    if args.action == "add-user":
        if not args.name:
            raise UserError("add-user needs the member's name: python -m imdbclf services add-user NAME")
        reached = add_member(config, args.name, args.read_only)
        print(f"# {args.name}'s exports ({'read-only' if args.read_only else 'team role'}): send them privately"
              + (f", with {reached.ca} (the CA, to the same path or edit the two lines that name it)"
                 if reached.ca else ""), file=sys.stderr)
    else:
        reached = up(config) if args.action == "up" else endpoints(config, args.name)
    if args.action == "up":
        print(f"# PostgreSQL on {config.host}:{config.pg_port} (databases {', '.join(DATABASES)}; workers log in as "
              f"{TUNING_ROLE}, not a superuser), mlflow server on {reached.tracking_uri} (logins only"
              f"{', TLS' if reached.ca else ''}), state in {config.root}/", file=sys.stderr)
    print(reached.export_lines())


if __name__ == "__main__":
    run_services_cli()
