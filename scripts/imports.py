#!/usr/bin/env python3
"""The file import graph of a Rust crate's source folder, and its import cycles.

Usage: scripts/imports.py [--check] [--allow FILE] [--modules] [ROOT ...]   (default ROOT: src)

An edge A -> B means file A names an item of file B: a path through `crate::`, `super::` or
`self::`, or through a name a `use` brought in for a module (`use crate::router::{self, X}` then
`router::local::f`). A parent naming its own declared child modules (`mod produce;` then
`produce::handle` in the registry, `pub use self::error::X`) is the module tree, not an import,
and is not counted; a child naming its parent (`super::Request`) is. Test code (`#[cfg(test)] mod ... { }`,
`*_tests.rs`) is skipped.

Prints the strongly connected components (import cycles) of more than one file. With --check,
exits 1 when a cycle has more than two files, or is a pair not listed in the allow-list file
(one "a.rs b.rs" pair per line, paths relative to ROOT, '#' comments), so a tightly-bound pair
must be allowed explicitly. --modules also prints the edges between top-level modules.
"""
import argparse
import collections
import os
import re
import sys


def read_files(root):
    files = {}
    for d, _, names in os.walk(root):
        for name in names:
            if name.endswith('.rs'):
                path = os.path.join(d, name)
                with open(path, encoding='utf-8') as f:
                    files[os.path.relpath(path, root)] = f.read()
    return files


def module_path(rel):
    parts = rel[:-3].split('/')
    if parts[-1] in ('mod', 'lib', 'main'):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(src):
    src = re.sub(r'/\*.*?\*/', '', src, flags=re.S)
    src = re.sub(r'//[^\n]*', '', src)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', src)


def strip_tests(src):
    """Drops `#[cfg(test)]` items (a `mod x { ... }` block or a `mod x;` line)."""
    out, pos = [], 0
    for m in re.finditer(r'#\[cfg\(test\)\]\s*', src):
        if m.start() < pos:
            continue
        out.append(src[pos:m.start()])
        rest = src[m.end():]
        brace, semi = rest.find('{'), rest.find(';')
        if semi != -1 and (brace == -1 or semi < brace):
            pos = m.end() + semi + 1
            continue
        depth, i = 0, brace
        while i < len(rest):
            if rest[i] == '{':
                depth += 1
            elif rest[i] == '}':
                depth -= 1
                if depth == 0:
                    break
            i += 1
        pos = m.end() + i + 1
    out.append(src[pos:])
    return ''.join(out)


def expand_use(tree):
    """`a::{b, c::{d, self}}` -> [[a, b], [a, c, d], [a, c]] (with `as` aliases dropped)."""
    tree = tree.strip()
    m = re.match(r'^((?:\w+::)*)\{(.*)\}$', tree, flags=re.S)
    if not m:
        path = re.split(r'\s+as\s+', tree)[0].strip()
        alias = re.split(r'\s+as\s+', tree)[1].strip() if ' as ' in tree else None
        parts = [p for p in path.split('::') if p]
        if parts and parts[-1] == 'self':
            parts = parts[:-1]
        return [(parts, alias)] if parts else []
    prefix = [p for p in m.group(1).split('::') if p]
    inner, depth, items, cur = m.group(2), 0, [], ''
    for ch in inner:
        if ch == '{':
            depth += 1
        elif ch == '}':
            depth -= 1
        if ch == ',' and depth == 0:
            items.append(cur)
            cur = ''
        else:
            cur += ch
    items.append(cur)
    out = []
    for item in items:
        if item.strip():
            for parts, alias in expand_use(item):
                out.append((prefix + parts, alias))
    return out


def resolve(me, parts):
    """An absolute module path for `parts` as written in module `me`, or None."""
    if not parts:
        return None
    head = parts[0]
    if head == 'crate':
        return list(parts[1:])
    if head == 'self':
        return list(me) + list(parts[1:])
    if head == 'super':
        i = 0
        while i < len(parts) and parts[i] == 'super':
            i += 1
        # `super` of a module is its parent: me minus one level per `super`.
        anchor = list(me)[: len(me) - i]
        return anchor + list(parts[i:])
    return None


def reexports(files):
    """Per module: item name -> absolute path of what its `pub use` re-exports."""
    out = collections.defaultdict(dict)
    for rel, raw in files.items():
        me = module_path(rel)
        src = strip_tests(strip_comments(raw))
        for m in re.finditer(r'\bpub(?:\([^)]*\))?\s+use\s+([^;]+);', src):
            for parts, alias in expand_use(m.group(1)):
                absolute = resolve(me, parts)
                if absolute is not None and absolute:
                    out[me][alias or absolute[-1]] = absolute
    return out


def locate(mods, exported, path, depth=0):
    """The file defining what `path` names: its longest module prefix, following re-exports
    (`pub use self::state::Shard` in shard/mod.rs sends `crate::shard::Shard` to shard/state.rs)."""
    for k in range(len(path), -1, -1):
        target = mods.get(tuple(path[:k]))
        if target is None:
            continue
        if k < len(path) and depth < 8:
            origin = exported.get(tuple(path[:k]), {}).get(path[k])
            if origin is not None and origin != list(path[: k + 1]):
                return locate(mods, exported, origin + list(path[k + 1:]), depth + 1)
        return target
    return None


def graph(files):
    mods = {module_path(rel): rel for rel in files}
    exported = reexports(files)
    edges = collections.defaultdict(set)
    for rel, raw in files.items():
        if rel.endswith('_tests.rs') or rel.endswith('/tests.rs'):
            continue
        src = strip_tests(strip_comments(raw))
        me = module_path(rel)
        is_mod = rel.endswith(('mod.rs', 'lib.rs', 'main.rs'))
        targets = []
        aliases = {}
        for m in re.finditer(r'\buse\s+([^;]+);', src):
            for parts, alias in expand_use(m.group(1)):
                absolute = resolve(me, parts)
                if absolute is None:
                    continue
                targets.append(absolute)
                # A module brought into scope by name can be used as a path head later.
                if tuple(absolute) in mods:
                    aliases[alias or absolute[-1]] = absolute
        body = re.sub(r'\buse\s+[^;]+;', '', src)
        # A module's own re-exports are the module tree (handled by `locate`), not imports.
        if is_mod:
            targets = [t for t in targets if tuple(t[: len(me)]) != me]
        for m in re.finditer(r'\b((?:crate|super|self)(?:::\w+)+)', body):
            absolute = resolve(me, m.group(1).split('::'))
            if absolute is not None:
                targets.append(absolute)
        for m in re.finditer(r'(?<![\w:])(\w+)((?:::\w+)+)', body):
            head = m.group(1)
            if head in aliases:
                targets.append(aliases[head] + m.group(2).split('::')[1:])
        for path in targets:
            target = locate(mods, exported, path)
            if target is None or target == rel:
                continue
            # A module root naming its own descendants (declaring, re-exporting, dispatching
            # to them) is the module tree, not an import.
            target_mod = module_path(target)
            if is_mod and len(target_mod) > len(me) and target_mod[: len(me)] == me:
                continue
            edges[rel].add(target)
    return edges


def sccs(nodes, edges):
    sys.setrecursionlimit(100000)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def load_allow(path):
    pairs = set()
    if not path:
        return pairs
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].split()
            if len(line) == 2:
                pairs.add(tuple(sorted(line)))
    return pairs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('roots', nargs='*', default=['src'])
    ap.add_argument('--check', action='store_true')
    ap.add_argument('--allow', help='allow-list of tightly-bound pairs')
    ap.add_argument('--modules', action='store_true')
    args = ap.parse_args()
    allowed = load_allow(args.allow)
    failed = False
    for root in args.roots:
        files = read_files(root)
        edges = graph(files)
        cycles = sccs(files, edges)
        print(f'{root}: {len(files)} files, import cycles: {[len(c) for c in cycles] or "none"}')
        for cycle in cycles:
            ok = len(cycle) == 2 and tuple(cycle) in allowed
            print(f"  {'allowed pair' if ok else 'CYCLE'}: {' '.join(cycle)}")
            if not ok:
                failed = True
                for a in cycle:
                    for b in sorted(edges[a]):
                        if b in cycle:
                            print(f'      {a} -> {b}')
        if args.modules:
            top = lambda r: r.split('/')[0].replace('.rs', '')
            module_edges = collections.defaultdict(set)
            for a, bs in edges.items():
                for b in bs:
                    if top(a) != top(b):
                        module_edges[top(a)].add(top(b))
            print('  module edges:')
            for a in sorted(module_edges):
                print(f'    {a} -> {", ".join(sorted(module_edges[a]))}')
    if args.check and failed:
        print('import cycles beyond the allowed pairs (see above): make the imports run one way')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
