#!/usr/bin/env python3
# Prints the longest non-test functions of src/: `python3 dev/fnlen.py src [N]`.
"""Longest non-test functions in src/ by brace matching."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'src'
out = []
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs') or f == 'tests.rs': continue
        p = os.path.join(dp, f)
        text = open(p).read()
        text = re.split(r'#\[cfg\(test\)\]\s*mod tests', text)[0]
        lines = text.split('\n')
        i = 0
        while i < len(lines):
            m = re.match(r'\s*(pub(\([a-z]+\))? )?(async )?fn ([a-z_0-9]+)', lines[i])
            if m:
                depth = 0; started = False; j = i
                while j < len(lines):
                    l = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j])
                    l = l.split('//')[0]
                    depth += l.count('{') - l.count('}')
                    if '{' in l: started = True
                    if started and depth <= 0: break
                    if not started and l.rstrip().endswith(';'): break
                    j += 1
                out.append((j - i + 1, p, i + 1, m.group(4)))
                i = j
            i += 1
out.sort(reverse=True)
for n, p, l, name in out[:int(sys.argv[2]) if len(sys.argv) > 2 else 12]:
    print(f'{n:5} {p}:{l} {name}')
