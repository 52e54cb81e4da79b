#!/usr/bin/env python3
"""Counts, per test category, the tests a TRX report says were executed (passed or failed, not
ignored), and checks them against minimum counts.

    python3 tests/tools/count-categories.py REPORT.trx Category=MIN [Category=MIN ...]

Prints one line per category ("category: N executed (minimum M)") and exits 1, naming each
category that fell short, when any did; 2 when the report cannot be read. Standard library only.
"""
import sys
import xml.etree.ElementTree as ET

NS = "{http://microsoft.com/schemas/VisualStudio/TeamTest/2010}"


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        root = ET.parse(argv[1]).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"count-categories: cannot read the test report {argv[1]}: {e}", file=sys.stderr)
        return 2
    categories = {}
    for test in root.iter(NS + "UnitTest"):
        categories[test.get("id")] = {item.get("TestCategory") for item in test.iter(NS + "TestCategoryItem")}
    executed = {}
    for result in root.iter(NS + "UnitTestResult"):
        if result.get("outcome") in ("Passed", "Failed", "Error", "Timeout"):
            for c in categories.get(result.get("testId"), ()):
                executed[c] = executed.get(c, 0) + 1
    short = []
    for spec in argv[2:]:
        name, _, minimum = spec.partition("=")
        n = executed.get(name, 0)
        print(f"  {name}: {n} executed (minimum {minimum})")
        if n < int(minimum):
            short.append(f"{name} ran {n} tests, fewer than its minimum of {minimum}")
    for s in short:
        print(f"category fell short: {s}")
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
