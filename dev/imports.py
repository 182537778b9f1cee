#!/usr/bin/env python3
# Prints the import circles of src/ per file and per top-level module (use
# lines and crate:: paths, test modules left out): `python3 dev/imports.py src`.
"""Module import graph of src/: cycles (SCCs) and file/function sizes."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
mods = {}
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs') or f == 'tests.rs': continue
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, root)[:-3]
        parts = rel.split('/')
        if parts[-1] == 'mod': parts = parts[:-1]
        if parts == ['main']: name = 'main'
        else: name = '::'.join(parts)
        text = open(p).read()
        text = re.split(r'#\[cfg\(test\)\]\s*mod tests', text)[0]
        mods[name] = text
names = set(mods)
graph = {}
for n, t in mods.items():
    deps = set()
    paths = [m.group(1) for m in re.finditer(r'crate::([a-z_]+(?:::[a-z_]+)*)', t)]
    for m in re.finditer(r'crate::\{', t):
        i = m.end(); depth = 1; j = i
        while depth:
            if t[j] == '{': depth += 1
            elif t[j] == '}': depth -= 1
            j += 1
        body = t[i:j-1]
        # top-level items
        d = 0; cur = ''; items = []
        for ch in body:
            if ch == '{': d += 1
            if ch == '}': d -= 1
            if ch == ',' and d == 0: items.append(cur); cur = ''
            else: cur += ch
        items.append(cur)
        for it in items:
            it = it.strip()
            mm = re.match(r'([a-z_]+(?:::[a-z_]+)*)', it)
            if mm: paths.append(mm.group(1))
    for pth in paths:
        path = pth.split('::')
        # longest module prefix
        for k in range(len(path), 0, -1):
            cand = '::'.join(path[:k])
            if cand in names:
                deps.add(cand); break
    # child module access via super:: counts as parent
    for m in re.finditer(r'\bsuper::([a-z_]+)', t):
        parent = '::'.join(n.split('::')[:-1])
        cand = (parent + '::' if parent else '') + m.group(1)
        if cand in names: deps.add(cand)
        elif parent in names: deps.add(parent)
    deps.discard(n)
    # a module depending on its own child or parent is not a circle we care about
    graph[n] = {d for d in deps if not d.startswith(n + '::') and not n.startswith(d + '::')}
# Tarjan
idx = {}; low = {}; st = []; on = set(); out = []; c = [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in graph[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: out.append(sorted(comp))
for v in sorted(graph):
    if v not in idx: sc(v)
print('import circles:', len(out))
for comp in out: print('  ', len(comp), ' '.join(comp))

# The same at the level of top-level modules (a folder is one module).
top = {}
for n, ds in graph.items():
    a = n.split('::')[0]
    top.setdefault(a, set()).update(d.split('::')[0] for d in ds)
for a in top: top[a].discard(a)
idx.clear(); low.clear(); st.clear(); on.clear(); out.clear(); c[0] = 0
graph = top
for v in sorted(graph):
    if v not in idx: sc(v)
print('import circles between top-level modules:', len(out))
for comp in out: print('  ', len(comp), ' '.join(comp))
