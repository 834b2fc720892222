"""`python -m ose.params`: check params.yaml and the installation before any work, or switch profile.

    python -m ose.params check [FILE]   validate FILE (default params.yaml), then check it against
                                        what is installed (`ose.preflight`)
    python -m ose.params use NAME       write profile NAME (profiles/NAME.yaml) to params.yaml

Kept apart from `ose.params`, which every stage imports and which must not import the checks of the
installation (they load models and task data).
"""

from __future__ import annotations

import argparse
import sys

from ose.params import ParamsError, load, profile_names, use_profile
from ose.pipeline import paths
from ose.preflight import check_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ose.params", description="Check params.yaml and the installation, or switch profile."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a parameter file")
    check.add_argument("file", nargs="?", default=str(paths.PARAMS))
    use = sub.add_parser("use", help="write a profile to params.yaml")
    use.add_argument("profile", choices=profile_names())
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            params = load(args.file)
            try:
                check_environment(params)
            except ParamsError as exc:
                raise ParamsError(f"{args.file}: {exc}") from None
            print(f"{args.file}: valid (profile {params.profile!r})")
        else:
            use_profile(args.profile)
            print(f"params.yaml now holds profile {args.profile!r}")
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
