"""Build a small CFD-suite report and screenshot its index.html with headless Chromium.

    python scripts/report_screenshot.py --out runs/report_preview [--chromium chromium]

Trains FNO for a few epochs on two cases of the BC sweep (small grid), so that the page holds
real tables and figures; then writes ``<out>/index.png`` (full page, 1280 px wide). Chromium is
not a dependency of pdeml: install it yourself (e.g. ``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from pdeml.suite import run_cfd_suite


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/report_preview", help="suite output folder")
    ap.add_argument("--cases", default="cavity,channel", help="suite cases")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs per model")
    ap.add_argument("--chromium", default=None, help="browser binary (default: found on PATH)")
    args = ap.parse_args()
    size = {"options": {"resolution": 24, "cells": 12, "final_time": 0.5, "n_snapshots": 6},
            "splits": {"train": 4, "val": 1, "test": 2}, "epochs": args.epochs}
    result = run_cfd_suite(args.out, cases=args.cases.split(","), sweeps=["bc"],
                           operators=["FNO"], size=size)
    index = Path(result["index"]).resolve()
    browser = args.chromium or next((b for b in ("chromium", "chromium-browser",
                                                 "google-chrome") if shutil.which(b)), None)
    if browser is None:
        print(json.dumps({"index": str(index), "screenshot": None}))
        print("no chromium found: open the index.html yourself", file=sys.stderr)
        return 1
    png = index.with_suffix(".png")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={png}", "--window-size=1280,4000",
                    index.as_uri()], check=True, capture_output=True, timeout=120)
    print(json.dumps({"index": str(index), "screenshot": str(png),
                      "html_bytes": index.stat().st_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
