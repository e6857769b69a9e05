#!/usr/bin/env python3
"""Fails (exit 1) when two or more files of the crate's src/ import each other in a loop.

Every module path a file names (`crate::a::b`, `super::x`, `self::y`, or a child module by its bare
name; in `use` lines, brace groups and code) is mapped to the file that defines the longest prefix
of it. A file naming one of its own ancestors (`super::Type` in a child module) is how Rust modules
nest and is not counted; unit-test modules (`#[cfg(test)] mod tests` to the end of the file) may
import anything. The loops are the strongly connected components of more than one file.

Usage: tools/import_cycles.py [SRC_DIR]   (default: src next to this script's parent)
"""
import os
import re
import sys


def module_files(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            files[tuple(parts)] = path
    return files


def code_of(text):
    """The text without comments, string contents and the trailing unit-test module."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    tests = re.search(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+tests\b", text)
    return text[: tests.start()] if tests else text


def named_paths(text):
    """Every `a::b::c` path the code names, brace groups of `use` expanded."""
    paths = [m.group(1).split("::") for m in re.finditer(r"\b((?:\w+)(?:::\w+)+)", text)]
    for m in re.finditer(r"\buse\s+([\w:]+?)::\{([^;]*)\};", text, flags=re.S):
        prefix = m.group(1).split("::")
        for item in re.split(r",(?![^{]*\})", m.group(2)):
            head = [h.strip("{} \n\t") for h in item.strip().split("::")]
            head = [h for h in head if h]
            if head and head[0] != "self":
                paths.append(prefix + head)
    return paths


def resolve(path, module, files):
    """The absolute module path `path` names from `module`, or None when it is outside the crate."""
    head, rest = path[0], list(path[1:])
    if head == "crate":
        base = ()
    elif head == "super":
        base = module[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif head == "self":
        base = module
    elif module + (head,) in files:
        base, rest = module, [head] + rest
    else:
        return None
    return base + tuple(rest)


def graph_of(files):
    graph = {m: set() for m in files}
    for module, path in files.items():
        with open(path, encoding="utf-8") as f:
            text = code_of(f.read())
        for named in named_paths(text):
            target = resolve(named, module, files)
            if target is None:
                continue
            for i in range(len(target), 0, -1):
                prefix = target[:i]
                if prefix in files:
                    if prefix != module[: len(prefix)]:  # not itself nor an ancestor
                        graph[module].add(prefix)
                    break
    return graph


def loops(graph):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "src")
    files = module_files(src)
    found = loops(graph_of(files))
    for component in found:
        names = sorted(os.path.relpath(files[m], src) for m in component)
        print("import loop: " + " <-> ".join(names), file=sys.stderr)
    print(f"{len(found)} import loop(s) among {len(files)} files in {src}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
