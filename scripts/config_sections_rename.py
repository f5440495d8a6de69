#!/usr/bin/env python3
# Moves flat BrokerConfig field uses into their sections (config.FIELD -> config.SECTION.FIELD)
# after a merge: run from the repository root as
#   cargo check --workspace --all-targets --message-format=json 2>/dev/null | python3 scripts/config_sections_rename.py
# and repeat until it fixes nothing; struct literals of BrokerConfig it lists as OTHER.
# Reads cargo JSON messages on stdin; for "no field `X` on type ...BrokerConfig" errors inserts
# "SECTION." before X at the reported span. Prints what it did and the other errors.
import json, re, sys, collections
sec = {}
cur = None
for line in open('src/config/sections.rs'):
    m = re.match(r'\s+(\w+): (\w+Section) \{', line)
    if m: cur = m.group(1); continue
    m = re.match(r'\s+(\w+): .*,\s*$', line)
    if m and cur: sec[m.group(1)] = cur
edits = collections.defaultdict(set)
other = []
for l in sys.stdin:
    try: msg = json.loads(l)
    except: continue
    if msg.get('reason') != 'compiler-message': continue
    m = msg['message']
    if m['level'] != 'error': continue
    text = m['message']
    mm = re.match(r"no field `(\w+)` on type `(.*)`", text)
    if mm and 'BrokerConfig' in mm.group(2) and mm.group(1) in sec:
        sp = [s for s in m['spans'] if s['is_primary']][0]
        edits[sp['file_name']].add((sp['line_start'], sp['column_start'], sp['byte_start'], mm.group(1)))
        continue
    sp = [s for s in m['spans'] if s['is_primary']]
    other.append(f"{sp[0]['file_name']}:{sp[0]['line_start']}: {text}" if sp else text)
root = ''
for f, es in edits.items():
    path = f if f.startswith('/') else root + f
    data = open(path, 'rb').read()
    for (ln, col, b, field) in sorted(es, key=lambda e: -e[2]):
        assert data[b:b+len(field)] == field.encode(), (f, ln, field)
        data = data[:b] + (sec[field] + '.').encode() + data[b:]
    open(path, 'wb').write(data)
    print(f"fixed {len(es)} in {f}")
for o in sorted(set(other)): print("OTHER", o)
