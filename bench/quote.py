#!/usr/bin/env python3
"""Quotes a benchmark report in README.md: the lines between README's markers

    <!-- bench/results.md: begin (bench/quote.py writes this block; do not edit) -->
    <!-- bench/results.md: end -->

become the report's, its headings moved down one level to sit under README's "Measured".
With --check it changes nothing and fails (exit 1, one line) when the block and the report differ,
so that README's figures are always one `make bench` run's.

Usage: quote.py [--check] RESULTS README
"""
import sys

BEGIN = "<!-- bench/results.md: begin (bench/quote.py writes this block; do not edit) -->"
END = "<!-- bench/results.md: end -->"


def quoted(results):
    lines = []
    for line in results.rstrip("\n").splitlines():
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            line = "#" * min(level + 1, 6) + line[level:]
        lines.append(line)
    return lines


def main():
    arguments = sys.argv[1:]
    check = "--check" in arguments
    arguments = [a for a in arguments if a != "--check"]
    if len(arguments) != 2:
        raise SystemExit("usage: quote.py [--check] RESULTS README")
    results_path, readme_path = arguments
    with open(results_path) as f:
        block = quoted(f.read())
    with open(readme_path) as f:
        readme = f.read().splitlines()
    if BEGIN not in readme or END not in readme or readme.index(END) < readme.index(BEGIN):
        raise SystemExit(f"quote: {readme_path} has no block between\n  {BEGIN}\n  {END}\nadd the two lines where the report goes")
    start, end = readme.index(BEGIN) + 1, readme.index(END)
    if check:
        if readme[start:end] != block:
            raise SystemExit(f"quote: {readme_path}'s measured block differs from {results_path}: "
                             f"run bench/quote.py {results_path} {readme_path} (or make bench)")
        print(f"quote: {readme_path} quotes {results_path}")
        return
    with open(readme_path, "w") as f:
        f.write("\n".join(readme[:start] + block + readme[end:]) + "\n")
    print(f"quote: {results_path} copied into {readme_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
