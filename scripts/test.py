"""Run every test tier, installing what each needs on first use.

    python3 scripts/test.py              # everything: style and types, pure, headless 4.2 + 5.0, UI
    python3 scripts/test.py unit bpy50   # only some tiers (lint, unit, bpy42, bpy50, ui)

Tiers:
- lint   ruff (lint + format), mypy --strict on the pure modules, pyright with fake-bpy-module
- unit   the pure modules (no Blender) against a real loopback server
- bpy42 / bpy50   real Blender as a Python module (4.2.23 LTS, 5.0.1), the extension loaded from an
         extensions repository, driven against the local stand-in for the service
- ui     Debian's Blender in a real window under Xvfb (installed with apt-get when run as root)
The two headless tiers run side by side. Ends with one line: "N passed, N failed, N skipped".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap

ROOT = _bootstrap.ROOT
RESULTS = ROOT / "build" / "test-results"
TIERS = ("lint", "unit", "bpy42", "bpy50", "ui")
UI_PACKAGES = ["blender", "xvfb", "xauth", "python3-requests", "python3-numpy"]


def lint() -> tuple[bool, str]:
    """Style and types; returns (ok, output)."""
    venv = _bootstrap.venv_python("lint").parent
    out, ok = [], True
    for cmd in (
        [venv / "ruff", "check", "triverse_addon", "scripts", "tests"],
        [venv / "ruff", "format", "--check", "triverse_addon", "scripts", "tests"],
        [venv / "mypy"],
        [venv / "pyright"],
    ):
        proc = subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
        verdict = "ok" if proc.returncode == 0 else "FAILED"
        out.append(f"  {Path(str(cmd[0])).name} {' '.join(map(str, cmd[1:2]))}: {verdict} {tail[0]}")
        if proc.returncode != 0:
            ok = False
            out.append(proc.stdout + proc.stderr)
    return ok, "\n".join(out)


def ensure_ui_packages() -> str | None:
    """Debian's Blender and Xvfb for the UI tier; None when ready, else why the tier is skipped."""
    if shutil.which("blender") and shutil.which("xvfb-run"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "blender / xvfb-run missing and not root to install them (apt-get install " + " ".join(UI_PACKAGES) + ")"
    print("[setup] installing Debian's Blender and Xvfb for the UI tier: first run only", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=False, env=env, stdout=subprocess.DEVNULL)
    proc = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *UI_PACKAGES],
        check=False,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    if proc.returncode != 0 or not shutil.which("blender"):
        return "apt-get could not install " + " ".join(UI_PACKAGES)
    return None


def start_pytest(
    tier: str, python: Path, paths: list[str], extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start one pytest run in the background, its output to a log file."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = open(RESULTS / f"{tier}.log", "w")  # noqa: SIM115 - closed by the caller through proc.log
    cmd = [str(python), "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", f"--junitxml={RESULTS / tier}.xml"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(extra_env or {})}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def counts(tier: str) -> tuple[int, int, int]:
    """(passed, failed, skipped) from a tier's JUnit XML."""
    path = RESULTS / f"{tier}.xml"
    if not path.exists():
        return 0, 1, 0
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return tests - failed - skipped, failed, skipped


def main() -> int:
    """Run the chosen tiers; exit non-zero when anything failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tiers", nargs="*", help=f"tiers to run: {', '.join(TIERS)} (default: all)")
    tiers = parser.parse_args().tiers or list(TIERS)
    unknown = sorted(set(tiers) - set(TIERS))
    if unknown:
        parser.error(f"unknown tier {', '.join(unknown)}; choose from {', '.join(TIERS)}")
    started = time.monotonic()
    passed = failed = skipped = 0
    ok = True

    # Environments first (pip prints little; installs are idempotent and fast once done).
    pythons = {t: _bootstrap.venv_python(t) for t in ("bpy50", "bpy42") if t in tiers}
    if "unit" in tiers:
        pythons.setdefault("bpy50", _bootstrap.venv_python("bpy50"))

    if "lint" in tiers:
        t0 = time.monotonic()
        lint_ok, report = lint()
        print(f"== lint ({time.monotonic() - t0:.0f} s)\n{report}", flush=True)
        passed, failed = passed + lint_ok, failed + (not lint_ok)
        ok &= lint_ok

    runs: list[tuple[str, subprocess.Popen, float]] = []
    if "unit" in tiers:
        proc = start_pytest("unit", pythons["bpy50"], ["tests/unit"])
        proc.wait()
        runs.append(("unit", proc, 0.0))
    headless = [t for t in ("bpy42", "bpy50") if t in tiers]
    started_headless = time.monotonic()
    procs = [(t, start_pytest(t, pythons[t], ["tests/blender"])) for t in headless]
    for tier, proc in procs:
        proc.wait()
        runs.append((tier, proc, time.monotonic() - started_headless))
    if "ui" in tiers:
        why = ensure_ui_packages()
        env = {"TRIVERSE_UI_SKIP": why} if why else {}
        # Debian's Blender takes the first python3.11 on PATH as its Python: make it the system's
        # (a pyenv or venv Python first on PATH lacks Debian's numpy and requests).
        env["PATH"] = "/usr/bin:" + os.environ.get("PATH", "")
        proc = start_pytest("ui", pythons.get("bpy50") or _bootstrap.venv_python("bpy50"), ["tests/ui"], env)
        proc.wait()
        runs.append(("ui", proc, 0.0))

    for tier, proc, _ in runs:
        proc.log.close()  # type: ignore[attr-defined]
        p, f, s = counts(tier)
        log_text = (RESULTS / f"{tier}.log").read_text(errors="replace")
        summary = [line for line in log_text.splitlines() if line.strip()][-1:] or ["(no output)"]
        print(f"== {tier}: {summary[0]}", flush=True)
        if proc.returncode not in (0,) or f:
            ok = False
            print(log_text[-20000:], flush=True)
        passed, failed, skipped = passed + p, failed + f, skipped + s

    print(f"\nlogs and JUnit XML: {RESULTS.relative_to(ROOT)}/ ; took {time.monotonic() - started:.0f} s")
    print(f"{passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 0 if ok and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
