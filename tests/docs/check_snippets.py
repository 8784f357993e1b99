#!/usr/bin/env python3
"""Checks that every ```cpp / ```cmake block of a doc is, word for word, part
of a file of a source tree, so the doc cannot drift from code that CI builds.

Usage: check_snippets.py DOC.md TREE [TREE...]   exit 0 ok, 1 a block not found
"""
import pathlib
import re
import sys


def blocks(text):
    for m in re.finditer(r"^```(cpp|cmake)\n(.*?)^```", text, re.M | re.S):
        yield m.group(1), m.group(2)


def normalize(s):
    return "\n".join(line.rstrip() for line in s.strip("\n").splitlines())


def main():
    doc = pathlib.Path(sys.argv[1])
    sources = []
    for tree in sys.argv[2:]:
        for p in sorted(pathlib.Path(tree).rglob("*")):
            if p.is_file() and p.suffix in (".cc", ".h", ".txt", ".proto", ".cmake"):
                sources.append((p, normalize(p.read_text())))
    missing = 0
    count = 0
    for lang, code in blocks(doc.read_text()):
        count += 1
        want = normalize(code)
        if not any(want in text for _, text in sources):
            missing += 1
            print(f"{doc}: this {lang} block is in no file of {sys.argv[2:]}:\n{code}")
    if count == 0:
        print(f"{doc}: no code blocks found")
        return 1
    print(f"{doc}: {count} code blocks, {missing} not found in the sources")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
