#!/usr/bin/env python3
"""Prints the median of every criterion benchmark under target/criterion as a Markdown table.

Run after `cargo bench`; criterion keeps each benchmark's estimates in new/estimates.json.
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def fmt(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


print("| benchmark | median |")
print("|---|---|")
for estimates in sorted(root.glob("**/new/estimates.json")):
    name = str(estimates.parent.parent.relative_to(root))
    median = json.loads(estimates.read_text())["median"]["point_estimate"]
    print(f"| {name} | {fmt(median)} |")
