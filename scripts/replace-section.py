#!/usr/bin/env python3
"""Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in a markdown file with the
contents of another file (the markers stay). Used by scripts/bench.sh to regenerate BENCHMARKS.md.

    scripts/replace-section.py BENCHMARKS.md molt-bench build/bench/results.md
"""

import sys
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 64
    target, name, source = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = target.read_text()
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        print(f"error: {target} must contain exactly one '{begin}' followed by one '{end}'", file=sys.stderr)
        return 1
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    body = source.read_text().strip("\n")
    target.write_text(f"{head}{begin}\n\n{body}\n\n{end}{tail}")
    print(f"{target}: section '{name}' replaced from {source}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
