"""Run every test tier, installing what each needs on first use; a tier that cannot run fails the run.

    python3 scripts/test.py                 # everything (what .ci/run runs)
    python3 scripts/test.py unit bpy50      # only some tiers
    python3 scripts/test.py --allow-skip    # on your own machine: checks lacking a tool skip, loudly

Tiers:
- lint     ruff (lint + format), mypy --strict on the pure modules, pyright with fake-bpy-module, and
           scripts/check_layers.py (the two layers, one room per feature, no import circle, no module over 450 lines)
- unit     the pure modules (no Blender) against a real loopback server
- bpy42 / bpy50   real Blender as a Python module (4.2.23 LTS, 5.0.1), the extension loaded from an
           extensions repository, driven against the local stand-in for the service
- ui       Debian's Blender in a real window under Xvfb
- binary   Debian's Blender as a program (`blender -b`): the batch script and the legacy install
- network  the client behind real servers: nginx (TLS, private CA) and tinyproxy in front of the stand-in
The ui, binary and network tiers need Debian packages: installed with one apt-get run when root.

A tier fails when any check fails, when pytest collects no test, or when it could not run (a tool or
package missing, an install that failed). With --allow-skip (TRIVERSE_ALLOW_SKIP=1 for the tiers),
checks that lack a tool skip instead and the summary lists them. Ends with "N passed, N failed, N skipped".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap

ROOT = _bootstrap.ROOT
RESULTS = ROOT / "build" / "test-results"
DEBIAN_BLENDER = ["blender", "xvfb", "xauth", "python3-requests", "python3-numpy"]
NETWORK_PACKAGES = ["nginx", "tinyproxy", "openssl"]


@dataclass(frozen=True)
class PytestTier:
    """A tier run by pytest: its folder, the environment whose Python runs it, the Debian packages it needs."""

    paths: tuple[str, ...]
    venv: str = "bpy50"
    packages: tuple[str, ...] = ()
    system_python_first: bool = False  # Debian's Blender takes the first python3.11 on PATH


PYTEST_TIERS: dict[str, PytestTier] = {
    "unit": PytestTier(("tests/unit",)),
    "bpy42": PytestTier(("tests/blender",), venv="bpy42"),
    "bpy50": PytestTier(("tests/blender",)),
    "ui": PytestTier(("tests/ui",), packages=tuple(DEBIAN_BLENDER), system_python_first=True),
    "binary": PytestTier(("tests/binary",), packages=tuple(DEBIAN_BLENDER), system_python_first=True),
    "network": PytestTier(("tests/network",), packages=tuple(NETWORK_PACKAGES)),
}
TIERS = ("lint", *PYTEST_TIERS)
# Tiers of a stage run side by side; stages run one after another. Measured on 2 cores, each alone:
# unit 32 s wall for 4 s of CPU (it waits on loopback sockets and timeouts), lint 12 s for 6 s, binary
# 14 s for 9 s; the three together 38 s (47 s with binary after lint + unit). The two headless tiers
# each keep about one core busy. The UI tier runs alone: it measures how long the add-on holds
# Blender's main thread.
STAGES = (("lint", "unit", "binary"), ("bpy42", "bpy50"), ("network",), ("ui",))


@dataclass
class Outcome:
    """What one tier did."""

    tier: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # why the tier failed besides failing checks
    skips: list[str] = field(default_factory=list)  # "test: reason" of every skipped check
    warnings: list[str] = field(default_factory=list)  # what could not be set up, allowed by --allow-skip
    report: str = ""  # lint's report, or the tail of the pytest log on failure

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.problems


def lint() -> Outcome:
    """Style, types and the package's layers."""
    venv = _bootstrap.venv_python("lint").parent
    out, ok = [], True
    for cmd in (
        [venv / "ruff", "check", "triverse_addon", "scripts", "tests"],
        [venv / "ruff", "format", "--check", "triverse_addon", "scripts", "tests"],
        [venv / "mypy"],
        [venv / "pyright"],
        [venv / "python", "scripts/check_layers.py"],
    ):
        proc = subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
        verdict = "ok" if proc.returncode == 0 else "FAILED"
        out.append(f"  {Path(str(cmd[0])).name} {' '.join(map(str, cmd[1:2]))}: {verdict} {tail[0]}")
        if proc.returncode != 0:
            ok = False
            out.append(proc.stdout + proc.stderr)
    return Outcome("lint", passed=int(ok), failed=int(not ok), report="\n".join(out))


def missing_packages(packages: list[str]) -> list[str]:
    """The Debian packages of `packages` that are not installed."""
    if not shutil.which("dpkg-query"):
        return list(packages)
    missing = []
    for pkg in packages:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True, check=False)
        if "install ok installed" not in proc.stdout:
            missing.append(pkg)
    return missing


def ensure_packages(tiers: list[str]) -> dict[str, str]:
    """Install the Debian packages the chosen tiers need, in one apt-get run; {tier: why it cannot run}."""
    wanted = list(dict.fromkeys(p for t in tiers if t in PYTEST_TIERS for p in PYTEST_TIERS[t].packages))
    missing = missing_packages(wanted)
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"[setup] installing Debian packages: {' '.join(missing)} (first run only)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock = ["-o", "DPkg::Lock::Timeout=600"]
        subprocess.run(["apt-get", *lock, "update", "-q"], check=False, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *missing],
            check=False,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        missing = missing_packages(missing)
    problems = {}
    for tier in tiers:
        lacking = [p for p in PYTEST_TIERS[tier].packages if p in missing] if tier in PYTEST_TIERS else []
        if lacking:
            how = "apt-get could not install" if os.geteuid() == 0 else "not root to install"
            problems[tier] = f"{how} {' '.join(lacking)}"
    return problems


def run_pytest(tier: str, allow_skip: bool, setup_problem: str | None) -> Outcome:
    """One pytest run, its output to build/test-results/<tier>.log, counted from its JUnit XML."""
    spec = PYTEST_TIERS[tier]
    outcome = Outcome(tier)
    if setup_problem and allow_skip:  # its checks skip through missing_tool(); said again in the summary
        outcome.warnings.append(setup_problem)
    elif setup_problem:
        outcome.problems.append(setup_problem)
    missing_paths = [p for p in spec.paths if not (ROOT / p).is_dir()]
    if missing_paths:
        outcome.problems.append(f"no tests: {', '.join(missing_paths)} does not exist")
        outcome.failed = 1
        return outcome
    started = time.monotonic()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("TRIVERSE_ALLOW_SKIP", None)
    if allow_skip:
        env["TRIVERSE_ALLOW_SKIP"] = "1"
    if spec.system_python_first:
        env["PATH"] = "/usr/bin:" + env.get("PATH", "")
    python = _bootstrap.VENV_ROOT / spec.venv / "bin" / "python"
    xml = RESULTS / f"{tier}.xml"
    cmd = [str(python), "-m", "pytest", *spec.paths, "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    with open(RESULTS / f"{tier}.log", "w") as log:
        code = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
    outcome.seconds = time.monotonic() - started
    if xml.exists():
        read_junit(xml, outcome)
    else:
        outcome.failed += 1
        outcome.problems.append("pytest wrote no results")
    if code == 5:
        outcome.problems.append("pytest collected no tests")
    elif code not in (0, 1):
        outcome.problems.append(f"pytest ended with status {code}")
    elif code == 1 and not outcome.failed:
        outcome.problems.append("pytest reported a failure")
    if outcome.skipped and not outcome.passed and not outcome.failed and not allow_skip:
        outcome.problems.append(f"all {outcome.skipped} checks skipped: the tier did not really run")
    if outcome.problems and not outcome.failed:
        outcome.failed = 1  # the tier itself counts as one failure in the closing line
    if not outcome.ok:
        outcome.report = (RESULTS / f"{tier}.log").read_text(errors="replace")[-20000:]
    return outcome


def read_junit(path: Path, outcome: Outcome) -> None:
    """Counts, and the name and reason of every skipped check, from a JUnit XML file."""
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome.failed += 1
        elif (skip := case.find("skipped")) is not None:
            outcome.skipped += 1
            outcome.skips.append(f"{name}: {skip.get('message', '')}")
        else:
            outcome.passed += 1
    # Errors outside any test (a collection error) are counted on the suite only.
    suites = [root] if root.tag == "testsuite" else list(root)
    total_errors = sum(int(s.get("errors", 0)) + int(s.get("failures", 0)) for s in suites)
    outcome.failed = max(outcome.failed, total_errors)


def run_tier(tier: str, allow_skip: bool, setup_problems: dict[str, str]) -> Outcome:
    """Run one tier (lint or a pytest tier)."""
    if tier == "lint":
        started = time.monotonic()
        outcome = lint()
        outcome.seconds = time.monotonic() - started
        return outcome
    return run_pytest(tier, allow_skip, setup_problems.get(tier))


def main() -> int:
    """Run the chosen tiers; exit non-zero when anything failed or could not run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tiers", nargs="*", help=f"tiers to run: {', '.join(TIERS)} (default: all)")
    parser.add_argument(
        "--allow-skip",
        action="store_true",
        help="let checks that lack a tool or package skip (TRIVERSE_ALLOW_SKIP=1) instead of failing the run",
    )
    args = parser.parse_args()
    tiers = args.tiers or list(TIERS)
    unknown = sorted(set(tiers) - set(TIERS))
    if unknown:
        parser.error(f"unknown tier {', '.join(unknown)}; choose from {', '.join(TIERS)}")
    started = time.monotonic()
    shutil.rmtree(RESULTS, ignore_errors=True)  # no stale log or XML can be read as this run's
    RESULTS.mkdir(parents=True)

    # Environments and packages first (idempotent, fast once done), so the stages below only test.
    for venv in dict.fromkeys(PYTEST_TIERS[t].venv for t in tiers if t in PYTEST_TIERS):
        _bootstrap.venv_python(venv)
    setup_problems = ensure_packages(tiers)

    outcomes: dict[str, Outcome] = {}
    for stage in STAGES:
        chosen = [t for t in stage if t in tiers]
        if not chosen:
            continue
        t0 = time.monotonic()
        threads = []
        for tier in chosen:

            def work(tier: str = tier) -> None:
                outcomes[tier] = run_tier(tier, args.allow_skip, setup_problems)

            threads.append(threading.Thread(target=work, name=tier))
            threads[-1].start()
        for thread in threads:
            thread.join()
        print(f"== stage {' + '.join(chosen)}: {time.monotonic() - t0:.0f} s", flush=True)
        for tier in chosen:
            print_outcome(outcomes[tier])

    results = [outcomes[t] for t in TIERS if t in outcomes]
    passed = sum(o.passed for o in results)
    failed = sum(o.failed for o in results)
    skipped = sum(o.skipped for o in results)
    skips = [f"{o.tier}: {s}" for o in results for s in o.skips]
    could_not_run = [s for s in skips if "could not run" in s]
    print(f"\nlogs and JUnit XML: {RESULTS.relative_to(ROOT)}/ ; took {time.monotonic() - started:.0f} s")
    if skips:
        print(
            f"\nWARNING: {len(skips)} check(s) SKIPPED"
            + (f", {len(could_not_run)} of them for want of a tool:" if could_not_run else ":")
        )
        for line in skips:
            print(f"  SKIPPED {line}")
    warnings = [f"{o.tier}: {w}" for o in results for w in o.warnings]
    for line in warnings:
        print(f"  NOT SET UP (allowed by --allow-skip) {line}")
    bad = [o for o in results if not o.ok]
    if bad:
        print(
            "\nFAILED tiers: " + "; ".join(f"{o.tier} ({', '.join(o.problems) or f'{o.failed} failed'})" for o in bad)
        )
    print(f"{passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 0 if not bad else 1


def print_outcome(outcome: Outcome) -> None:
    """One tier's verdict, and its report when it failed (lint's always)."""
    verdict = "ok" if outcome.ok else "FAILED"
    counts = f"{outcome.passed} passed, {outcome.failed} failed, {outcome.skipped} skipped"
    print(f"== {outcome.tier}: {verdict}: {counts} ({outcome.seconds:.0f} s)", flush=True)
    for problem in outcome.problems:
        print(f"   could not run properly: {problem}", flush=True)
    for warning in outcome.warnings:
        print(f"   NOT SET UP (allowed by --allow-skip): {warning}", flush=True)
    if outcome.report and (outcome.tier == "lint" or not outcome.ok):
        print(outcome.report, flush=True)


if __name__ == "__main__":
    sys.exit(main())
