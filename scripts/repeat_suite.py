"""Run the default test suite many times from a fresh clone, to find flaky tests.

A fresh ``git clone`` of the repository (``--rev``, HEAD by default) gets its own ``.venv``
from the Makefile (``make install``, as a new user's ``make test`` builds it); then the default
suite (``-m "not slow"``, as ``make test``, without ``-x`` so that one run shows every
failure) runs ``--runs`` times. Every ``--burn-every``-th run (every second by default) has
one core burnt by a spinning process for its whole duration. Per run: wall time, whether a
core was burnt, the load average before it, and each failed test with its message's first
line. The JSON (``--out``) is written after every run, and re-running the same command with
the same ``--out`` continues with the next run (a killed job resumes); a table of failure
counts per test is printed at the end::

    python scripts/repeat_suite.py --runs 20 --out runs/repeat_suite.json   # ~2 h on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BURNER = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass\n"


def fresh_clone(rev: str, where: Path) -> Path:
    """Clone ``rev`` of this repository into ``where`` and build its venv with the Makefile."""
    repo = where / "pdeml"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(repo)], check=True)
    subprocess.run(["git", "checkout", "--quiet", rev], cwd=repo, check=True)
    t0 = time.monotonic()
    subprocess.run(["make", "install"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
    print(f"fresh clone of {rev} at {repo}; venv built in {time.monotonic() - t0:.0f} s",
          flush=True)
    return repo


def failures(junit: Path) -> list[dict[str, str]]:
    """The failed and errored tests of a JUnit XML report, with their message's first line."""
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for kind in ("failure", "error"):
            node = case.find(kind)
            if node is not None:
                message = (node.get("message") or "").strip().splitlines() or [""]
                out.append({"test": f"{case.get('classname')}::{case.get('name')}",
                            "kind": kind, "message": message[0][:300]})
    return out


def run_once(repo: Path, burn: bool, junit: Path) -> dict:
    """One default-suite run in ``repo``; a spinning process holds a core when ``burn``."""
    # The burner spins only while this process lives: a killed job leaves no spinning core.
    burner = subprocess.Popen([sys.executable, "-c", BURNER]) if burn else None
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    try:
        done = subprocess.run([str(repo / ".venv" / "bin" / "python"), "-m", "pytest", "-q",
                               "-m", "not slow", "--timeout=900", "-p", "no:cacheprovider",
                               f"--junitxml={junit}"], cwd=repo, capture_output=True, text=True,
                              env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    return {"burnt_core": burn, "load_before": round(load, 2),
            "seconds": round(time.monotonic() - t0, 1), "returncode": done.returncode,
            "summary": summary, "failed": failures(junit) if junit.exists() else []}


def table(runs: list[dict]) -> str:
    counts: dict[str, list[int]] = {}
    for r in runs:
        for f in r["failed"]:
            counts.setdefault(f["test"], [0, 0])[int(r["burnt_core"])] += 1
    n_burnt = sum(r["burnt_core"] for r in runs)
    lines = [f"{len(runs)} runs ({n_burnt} with a burnt core); "
             f"{sum(r['returncode'] == 0 for r in runs)} passed",
             "| test | failed (quiet) | failed (burnt core) |", "|---|---|---|"]
    lines += [f"| {t} | {q}/{len(runs) - n_burnt} | {b}/{n_burnt} |"
              for t, (q, b) in sorted(counts.items())]
    secs = sorted(r["seconds"] for r in runs if not r["burnt_core"])
    if secs:
        lines.append(f"suite seconds, quiet runs: median {secs[len(secs) // 2]:.0f}, "
                     f"max {secs[-1]:.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--burn-every", type=int, default=2,
                    help="burn a core in every N-th run (0: never)")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--out", type=Path, default=Path("runs/repeat_suite.json"))
    args = ap.parse_args(argv)
    # SIGTERM (kill, a CI timeout) unwinds like Ctrl-C, so that the burner is stopped and the
    # finished runs stay in --out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.runs < 1 or args.burn_every < 0:
        ap.error("--runs must be >= 1 and --burn-every >= 0")
    rev = subprocess.run(["git", "rev-parse", args.rev], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    state = json.loads(args.out.read_text()) if args.out.exists() else {"rev": rev, "runs": []}
    if state["rev"] != rev:
        ap.error(f"{args.out} holds runs of {state['rev'][:10]}, not {rev[:10]}; use another "
                 "--out")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pdeml-repeat-") as tmp:
        repo = fresh_clone(rev, Path(tmp))
        for i in range(len(state["runs"]), args.runs):
            burn = args.burn_every > 0 and i % args.burn_every == args.burn_every - 1
            result = run_once(repo, burn, Path(tmp) / f"junit{i}.xml")
            state["runs"].append(result)
            partial = args.out.with_suffix(".json.tmp")
            partial.write_text(json.dumps(state, indent=1))
            os.replace(partial, args.out)  # a killed job keeps every finished run
            names = ", ".join(f["test"].rsplit("::", 1)[-1] for f in result["failed"]) or "-"
            print(f"run {i + 1}/{args.runs} burnt={burn} {result['seconds']:.0f} s "
                  f"{result['summary']} failed: {names}", flush=True)
    print(table(state["runs"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
