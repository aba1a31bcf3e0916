"""`make mutate`: mutation testing of source_usage with mutmut, one scope at a time, and its score.

    python mutation/mutate.py [--scope framework|vendors] [--max-children N] [--fresh] [--fail-under PCT]
    python mutation/mutate.py --scope S score            # the score of the last run, without running
    python mutation/mutate.py --scope S diffs [all]      # the diff of each mutant not killed nor justified
    python mutation/mutate.py --scope S results|show NAME|browse|tests-for-mutant NAME   # any mutmut command

Each scope runs in its own folder, mutants/<scope>/ (git-ignored), so the two never overwrite each other's
mutated copies or results: the folder holds links to the sources and tests and a setup.cfg made from the
root's [mutmut] section with the scope's `only_mutate` and test selection. mutmut copies the package into
mutants/<scope>/mutants/ and runs each mutant's tests there, only those that call the mutated function.

A run resumes where the last stopped; before it, the mutants that survived or had no test are put back to
"not checked", so the tests added since are tried on them (mutmut itself keeps a verdict until the function
changes). `--fresh` starts the scope over.

The score is mutmut's: (killed + timeout) / (all mutants - skipped). Every surviving mutant (survived,
no tests, suspicious) must be named in mutation/survivors.md with why it is equivalent or accepted; the
command lists those that are not and exits 1 when any is missing or the score is under --fail-under
(90 % for the framework).
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
SURVIVORS = ROOT / "mutation" / "survivors.md"

# The scopes: what is mutated, which tests may kill it, and the score a run must reach.
# The unit tests that may kill a mutant. mutmut runs, for each mutant, only those among them that call the
# mutated function. The framework is tested with its own tests (which drive real streams of each vendor
# through requests-mock where they need to): the vendors' tests call nearly every framework function, so
# a framework mutant that survives or hangs would run all of them, and the run would take hours here.
# The vendors are tested with their own tests and the framework's. The integration tests run the console
# script in subprocesses, which never see a mutant, and take minutes: they are left out.
FRAMEWORK_TESTS = ["unit_tests/framework/"]
VENDOR_TESTS = [
    "unit_tests/framework/",
    "unit_tests/test_meraki_*.py",
    "unit_tests/test_twilio_*.py",
    "unit_tests/test_emnify_*.py",
    "unit_tests/test_thousandeyes_*.py",
    "unit_tests/test_fleet_budgets.py",
]

# The scopes: what is mutated, which tests may kill it, and the score a run must reach.
SCOPES: Dict[str, Dict[str, object]] = {
    "framework": {"only_mutate": ["source_usage/framework/*"], "tests": FRAMEWORK_TESTS, "fail_under": 90.0},
    "vendors": {"only_mutate": ["source_usage/vendors/*"], "tests": VENDOR_TESTS, "fail_under": 0.0},
}

# What mutants/<scope>/ links to (mutmut reads the sources and the also_copy entries through these).
LINKS = ["source_usage", "unit_tests", "conftest.py", "pytest.ini", "integration_tests"]

# mutmut's exit-code meanings (mutmut.stats.status_by_exit_code), grouped for the score.
DETECTED = {"killed", "timeout", "caught by type check", "segfault"}
UNDETECTED = {"survived", "no tests", "suspicious"}


def scope_dir(scope: str) -> Path:
    return ROOT / "mutants" / scope


def mutmut_bin() -> str:
    candidate = Path(sys.executable).with_name("mutmut")
    return str(candidate) if candidate.exists() else "mutmut"


def prepare(scope: str) -> Path:
    """mutants/<scope>/ with links to the sources and tests and the scope's setup.cfg."""
    where = scope_dir(scope)
    where.mkdir(parents=True, exist_ok=True)
    for name in LINKS:
        link = where / name
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(ROOT / name, where))
    spec = SCOPES[scope]
    root_cfg = configparser.ConfigParser()
    root_cfg.read(ROOT / "setup.cfg")
    section = dict(root_cfg["mutmut"])
    section["only_mutate"] = "\n" + "\n".join(spec["only_mutate"])  # type: ignore[arg-type]
    tests: List[str] = []
    for pattern in spec["tests"]:  # type: ignore[union-attr]
        tests.extend(sorted(glob.glob(pattern, root_dir=ROOT)) if "*" in pattern else [pattern])
    section["pytest_add_cli_args_test_selection"] = "\n" + "\n".join(tests)
    cfg = configparser.ConfigParser()
    cfg["mutmut"] = section
    text = "# Written by mutation/mutate.py from the root setup.cfg; edit that one.\n"
    with open(where / "setup.cfg.new", "w") as out:
        out.write(text)
        cfg.write(out)
    os.replace(where / "setup.cfg.new", where / "setup.cfg")
    return where


def meta_files(scope: str) -> List[Path]:
    return sorted((scope_dir(scope) / "mutants" / "source_usage").rglob("*.py.meta"))


def in_scope(scope: str, meta: Path) -> bool:
    relative = meta.relative_to(scope_dir(scope) / "mutants").as_posix()[: -len(".meta")]
    return any(fnmatch.fnmatch(relative, p) for p in SCOPES[scope]["only_mutate"])  # type: ignore[union-attr]


def load_meta(meta: Path) -> Optional[dict]:
    try:
        return json.loads(meta.read_text())
    except (OSError, ValueError):
        return None


def repair(scope: str) -> None:
    """A results file cut short (mutmut stopped with Ctrl-C while writing it) would stop the next run:
    forget that file's mutants, which mutmut then makes and tests again."""
    for meta in meta_files(scope):
        if load_meta(meta) is None:
            source = meta.with_suffix("")
            print(f"{meta.relative_to(ROOT)} is unreadable (a run stopped while writing it): its mutants are made again")
            for stale in (meta, source, source.with_name(source.name + ".spans")):
                stale.unlink(missing_ok=True)


def verdicts(scope: str) -> Dict[str, str]:
    """Every mutant of the scope with mutmut's status for it."""
    from mutmut.stats import status_by_exit_code

    found: Dict[str, str] = {}
    for meta in meta_files(scope):
        data = load_meta(meta)
        if data is None or not in_scope(scope, meta):
            continue
        for name, code in data["exit_code_by_key"].items():
            found[name] = status_by_exit_code[code]
    return found


def reopen_undetected(scope: str) -> int:
    """Put survivors and mutants without tests back to "not checked": the tests added since may kill them."""
    from mutmut.stats import status_by_exit_code

    reopened = 0
    for meta in meta_files(scope):
        data = load_meta(meta)
        if data is None:
            continue
        codes = data["exit_code_by_key"]
        changed = False
        for name, code in codes.items():
            if code is not None and status_by_exit_code[code] in UNDETECTED:
                codes[name] = None
                changed = True
                reopened += 1
        if changed:
            meta.write_text(json.dumps(data, indent=4))
    return reopened


def justified() -> Dict[str, str]:
    """Mutants mutation/survivors.md justifies: a line naming the mutant (in backticks) and saying why it is
    `equivalent:` or `accepted:`. A line saying `open:` lists a survivor nobody has looked at yet."""
    if not SURVIVORS.exists():
        return {}
    names: Dict[str, str] = {}
    for line in SURVIVORS.read_text().splitlines():
        if "equivalent:" not in line and "accepted:" not in line:
            continue
        for name in re.findall(r"`(source_usage\.[\w.ǁ]+__mutmut_\d+)`", line):
            names[name] = line
    return names


def report(scope: str, fail_under: float) -> int:
    found = verdicts(scope)
    if not found:
        print(f"mutation score ({scope}): no results yet; run `make mutate SCOPE={scope}`")
        return 1
    counts = Counter(found.values())
    total = len(found)
    skipped = counts.get("skipped", 0)
    detected = sum(counts.get(s, 0) for s in DETECTED)
    tested = total - skipped
    score = 100.0 * detected / tested if tested else 0.0
    listed = justified()
    undetected = sorted(name for name, status in found.items() if status in UNDETECTED)
    unlisted = [name for name in undetected if name not in listed]
    pending = counts.get("not checked", 0) + counts.get("check was interrupted by user", 0)
    print()
    print(f"mutation results ({scope}): {total} mutants: " + ", ".join(f"{n} {s}" for s, n in counts.most_common()))
    print(
        f"mutation score ({scope}): {score:.1f}% killed ({detected}/{tested}); "
        f"{len(undetected)} not killed, {len(undetected) - len(unlisted)} of them justified in mutation/survivors.md"
    )
    status = 0
    if pending:
        print(f"  {pending} mutants not checked yet: run it again to finish")
        status = 1
    if unlisted:
        print(f"  {len(unlisted)} not killed and not in mutation/survivors.md (see: python mutation/mutate.py --scope {scope} show NAME):")
        for name in unlisted[:40]:
            print(f"    {name}: {found[name]}")
        if len(unlisted) > 40:
            print(f"    ... and {len(unlisted) - 40} more (their diffs: make mutate SCOPE={scope} ARGS=diffs)")
        status = 1
    stale = sorted(name for name in listed if name.startswith(f"source_usage.{scope}.") and found.get(name) in DETECTED)
    if stale:
        print(f"  {len(stale)} listed in mutation/survivors.md but now killed (remove them): {', '.join(stale)}")
    if score < fail_under:
        print(f"  under the target of {fail_under:.0f}%")
        status = 1
    return status


def diffs(scope: str, everything: bool) -> int:
    """The diff of every mutant not killed (and not in mutation/survivors.md unless `everything`)."""
    found = verdicts(scope)
    listed = justified()
    os.chdir(scope_dir(scope))
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    for meta in meta_files(scope):
        path = meta.relative_to(scope_dir(scope) / "mutants").as_posix()[: -len(".meta")]
        for name in (load_meta(meta) or {"exit_code_by_key": {}})["exit_code_by_key"]:
            if found.get(name) in UNDETECTED and (everything or name not in listed):
                print(f"# {name}: {found[name]}")
                print(get_diff_for_mutant(name, path=path))
    return 0


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scope", choices=sorted(SCOPES), default="framework")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--fresh", action="store_true", help="forget this scope's mutants and results first")
    parser.add_argument("--fail-under", type=float, default=None, help="the score the run must reach (percent)")
    parser.add_argument("command", nargs="*", default=["run"], help="run (default), score, or a mutmut command")
    args = parser.parse_args(argv)
    fail_under = args.fail_under if args.fail_under is not None else float(SCOPES[args.scope]["fail_under"])  # type: ignore[arg-type]
    if args.fresh:
        shutil.rmtree(scope_dir(args.scope), ignore_errors=True)
    where = prepare(args.scope)
    command = args.command
    if command == ["score"]:
        return report(args.scope, fail_under)
    if command[0] == "diffs":
        return diffs(args.scope, everything=command[1:] == ["all"])
    if command[0] != "run":
        return subprocess.call([mutmut_bin(), *command], cwd=where)
    repair(args.scope)
    reopened = reopen_undetected(args.scope)
    if reopened:
        print(f"{reopened} mutants that survived last time will be tried again")
    started = time.monotonic()
    code = subprocess.call([mutmut_bin(), "run", "--max-children", str(args.max_children), *command[1:]], cwd=where)
    minutes = (time.monotonic() - started) / 60
    print(f"\nmutmut run ({args.scope}) took {minutes:.1f} min with {args.max_children} workers (exit {code})")
    if code != 0:
        return code
    return report(args.scope, fail_under)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
