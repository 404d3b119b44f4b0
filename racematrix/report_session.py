"""The driver of ``nox -s report``."""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from .errors import BadInput, OneLineArgumentParser
from .fileio import folder_problem
from .rawresult import NoUsableResults, RawResultWarning
from .report import build_report


def main(argv: list[str] | None = None) -> None:
    home = os.environ.get("RACEMATRIX_RESULTS", "results")
    parser = OneLineArgumentParser(prog="nox -s report --", label="report",
                                   help_hint="nox -s report -- --help")
    parser.add_argument("--raw", nargs="+", action="extend", metavar="DIR",
                        help="folders (or files) of raw results to merge; "
                        f"given twice, both count (default: {home}/raw)")
    parser.add_argument("--out", default=home,
                        help=f"where the tables and report go (default: {home})")
    parser.add_argument("--bisect", default=f"{home}/bisect",
                        help=f"folder of bisect results (default: {home}/bisect)")
    parser.add_argument("--pool", action="store_true",
                        help="pool one environment's results from several "
                             "machines where every version matches")
    try:
        args = parser.parse_args(argv)
    except BadInput as error:
        parser.exit(2, f"{error}\n")
    args.raw = list(dict.fromkeys(args.raw or [f"{home}/raw"]))
    unwritable = folder_problem(args.out)
    if unwritable:
        parser.exit(2, f"report: {unwritable}\n")
    missing = [d for d in args.raw if not Path(d).exists()]
    if missing:
        parser.exit(2, f"report: no such folder or file: "
                       f"{', '.join(missing)}\n")
    warnings.simplefilter("always", RawResultWarning)
    warnings.formatwarning = lambda message, *_: f"warning: {message}\n"
    command = "nox -s report" + (f" -- --raw {' '.join(args.raw)}"
                                 if args.raw != [f"{home}/raw"] else "")
    if args.pool:
        command += " --pool"
    try:
        rows, records = build_report(args.raw, args.out, args.bisect, command,
                                     pool=args.pool)
    except NoUsableResults as error:
        parser.exit(2, f"report: {error}\n")
    print(f"report: {len(rows)} rows from {len(records)} raw files -> "
          f"{args.out}/REPORT.md, {args.out}/failure_rates.png")


if __name__ == "__main__":
    main(sys.argv[1:])
