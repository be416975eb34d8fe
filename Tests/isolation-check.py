#!/usr/bin/env python3
"""Checks docs/isolation.md as the isolation suite just wrote it.

Fails (exit 1, one line per problem) when a row is not held (or not shown), or when the rows
differ from the committed file's: the same attacks, each with the same expectation and result.
Observed values and controls carry timings and counts, so they are not compared.

With --mutant it checks the broken variant's table instead (`make mutants`: the same suite with
every attack disabled, written to .build/isolation-mutant.md): every row of docs/isolation.md must
be there and "not shown": with its attack disabled, a row may show neither the attack's evidence
nor a holding result, or its proof would stand without the attack.

Usage: isolation-check.py [--mutant] [REPOSITORY]
"""
import os
import subprocess
import sys

HEADER = "| Area | Attack | Expected | Attempted | Observed | Control (boundary removed) | Result | Test |"


def rows(text):
    """{(area, attack): (expected, result)} of a table in the current format, or None."""
    lines = text.splitlines()
    if HEADER not in lines:
        return None
    found = {}
    for line in lines[lines.index(HEADER) + 2:]:
        if not line.startswith("| "):
            continue
        cells, cell, escaped = [], "", False
        for character in line[1:-1]:
            if escaped:
                cell += character
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == "|":
                cells.append(cell.strip())
                cell = ""
            else:
                cell += character
        cells.append(cell.strip())
        if len(cells) != 8:
            raise SystemExit(f"isolation-check: a row has {len(cells)} cells, not 8: {line[:120]}")
        found[(cells[0], cells[1])] = (cells[2], cells[6])
    return found


def read_rows(path, hint):
    try:
        with open(path) as f:
            found = rows(f.read())
    except FileNotFoundError:
        found = None
    if not found:
        raise SystemExit(f"isolation-check: {path} holds no rows of this run: {hint}")
    return found


def check_mutant(repository):
    table = read_rows(os.path.join(repository, "docs", "isolation.md"), "run the isolation suite (make isolation)")
    mutant = read_rows(os.path.join(repository, ".build", "isolation-mutant.md"), "run the broken variant (make mutants)")
    problems = []
    for key in sorted(table.keys() - mutant.keys()):
        problems.append(f"{key[0]}: {key[1]}: not recorded by the broken variant")
    for key in sorted(mutant.keys() - table.keys()):
        problems.append(f"{key[0]}: {key[1]}: recorded by the broken variant only")
    for key in sorted(table.keys() & mutant.keys()):
        if mutant[key][1] == "held":
            problems.append(f"{key[0]}: {key[1]}: held with its attack disabled")
        elif mutant[key][1] != "**NOT SHOWN**":
            problems.append(f"{key[0]}: {key[1]}: {mutant[key][1]} with its attack disabled: an attempt shown without the attack")
    for problem in problems:
        print("isolation-check: mutant: " + problem)
    red = sum(1 for key in table.keys() & mutant.keys() if mutant[key][1] == "**NOT SHOWN**")
    print(f"isolation-check: mutant: {red} of {len(table)} rows went red (not shown) with their attack disabled")
    sys.exit(1 if problems else 0)


def main():
    arguments = sys.argv[1:]
    mutant = "--mutant" in arguments
    arguments = [a for a in arguments if a != "--mutant"]
    repository = arguments[0] if arguments else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if mutant:
        check_mutant(repository)
    path = os.path.join(repository, "docs", "isolation.md")
    fresh = read_rows(path, "run the isolation suite (make isolation)")
    problems = [f"{area}: {attack}: {result}" for (area, attack), (_, result) in fresh.items() if result != "held"]
    committed_text = subprocess.run(["git", "-C", repository, "show", "HEAD:docs/isolation.md"],
                                    capture_output=True, text=True).stdout
    committed = rows(committed_text)
    if committed is None:
        print("isolation-check: the committed docs/isolation.md predates this format; rows not compared")
    else:
        for key in committed.keys() - fresh.keys():
            problems.append(f"{key[0]}: {key[1]}: in the committed table, not shown by this run")
        for key in fresh.keys() - committed.keys():
            problems.append(f"{key[0]}: {key[1]}: shown by this run, not in the committed table (commit docs/isolation.md)")
        for key in fresh.keys() & committed.keys():
            if fresh[key] != committed[key]:
                problems.append(f"{key[0]}: {key[1]}: committed {committed[key]}, this run {fresh[key]}")
    for problem in problems:
        print("isolation-check: " + problem)
    held = sum(1 for _, result in fresh.values() if result == "held")
    print(f"isolation-check: {held} of {len(fresh)} rows held" + ("" if committed is None else f", {len(committed)} committed"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
