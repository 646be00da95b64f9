"""Compare two lifecircle output folders: every CSV cell and every number of summary.json.

Used to check that a refactoring changed no result, e.g. a run of the previous commit against a run
of this one on the Shanghai sample::

    python benchmarks/compare_runs.py out_before/ out_after/

Ignores what is expected to differ (creation time, version, absolute paths and file sizes in
``inputs``) and prints every other difference; exit code 1 when there is one.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

IGNORED = {"created", "lifecircle_version", "path", "bytes"}


def _walk(a, b, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in IGNORED:
                continue
            if k not in a or k not in b:
                out.append(f"{where}/{k}: only in {'second' if k not in a else 'first'}")
            else:
                _walk(a[k], b[k], f"{where}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{where}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float):
        if not (a == b or (math.isnan(a) and math.isnan(b))):
            out.append(f"{where}: {a!r} != {b!r}")
    elif a != b:
        out.append(f"{where}: {a!r} != {b!r}")


def compare(first: Path, second: Path) -> list[str]:
    diffs: list[str] = []
    _walk(json.loads((first / "summary.json").read_text(encoding="utf-8")),
          json.loads((second / "summary.json").read_text(encoding="utf-8")), "summary.json", diffs)
    names = {p.name for p in first.glob("*.csv")} | {p.name for p in second.glob("*.csv")}
    for name in sorted(names):
        if not (first / name).is_file() or not (second / name).is_file():
            diffs.append(f"{name}: only in {'second' if not (first / name).is_file() else 'first'}")
            continue
        a = pd.read_csv(first / name, encoding="utf-8-sig")
        b = pd.read_csv(second / name, encoding="utf-8-sig")
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError as exc:
            diffs.append(f"{name}: {str(exc).splitlines()[0]}")
    return diffs


if __name__ == "__main__":
    diffs = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    print("\n".join(diffs) if diffs else "identical: every CSV cell and every summary.json number")
    sys.exit(1 if diffs else 0)
