"""Make the golden fixtures under tests/fixtures/ by running the *official* GPT-SoVITS classes.

The official code is never a dependency of the library or of the tests: this script imports it
from a checkout whose path you give on the command line, runs it with fixed seeds on the CPU in
float32, and writes plain tensor containers (`torch.load(..., weights_only=True)`) that the tests
compare against. Only the outputs are committed; tests/fixtures/README.md says how each was made.

    python tools/make_official_fixtures.py --official /path/to/GPT-SoVITS [GROUP ...]

The official checkout must be at commit 48b1a0169a28582a8984402f82cf438d3bfa6aca (checked).
Each group lives in tools/official_fixtures/<group>.py and exposes
`make(official: pathlib.Path, out: pathlib.Path) -> list[pathlib.Path]`.
"""
from __future__ import annotations

import argparse
import importlib
import pathlib
import subprocess
import sys

PINNED_COMMIT = "48b1a0169a28582a8984402f82cf438d3bfa6aca"
GROUPS_DIR = pathlib.Path(__file__).resolve().parent / "official_fixtures"
DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def available_groups() -> list[str]:
    """Every tools/official_fixtures/<group>.py that defines make()."""
    return sorted(p.stem for p in GROUPS_DIR.glob("*.py") if not p.stem.startswith("_"))


def check_commit(official: pathlib.Path, allow_other: bool) -> None:
    """Refuse a checkout at another commit (fixtures must come from the pinned code)."""
    try:
        head = subprocess.run(["git", "-C", str(official), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = None
    if head != PINNED_COMMIT:
        message = (f"{official} is at commit {head or 'unknown (not a git checkout)'}, "
                   f"expected {PINNED_COMMIT}")
        if not allow_other:
            raise SystemExit(message + " (pass --allow-other-commit to go on anyway)")
        print("warning: " + message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=pathlib.Path, required=True,
                        help="a checkout of RVC-Boss/GPT-SoVITS (the folder that holds GPT_SoVITS/)")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                        help="where the fixtures go (default: tests/fixtures)")
    parser.add_argument("--allow-other-commit", action="store_true",
                        help="run even if the checkout is not at the pinned commit")
    parser.add_argument("groups", nargs="*", help=f"groups to make (default: all of {available_groups()})")
    args = parser.parse_args(argv)

    official = args.official.resolve()
    if not (official / "GPT_SoVITS").is_dir():
        parser.error(f"{official} has no GPT_SoVITS/ folder: give the root of the official checkout")
    check_commit(official, args.allow_other_commit)
    groups = args.groups or available_groups()
    unknown = sorted(set(groups) - set(available_groups()))
    if unknown:
        parser.error(f"unknown group(s) {unknown}; known: {available_groups()}")

    sys.path.insert(0, str(GROUPS_DIR.parent))
    for group in groups:
        module = importlib.import_module(f"official_fixtures.{group}")
        written = module.make(official, args.out.resolve())
        for path in written:
            print(f"{group}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
