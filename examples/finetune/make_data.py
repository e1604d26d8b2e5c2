#!/usr/bin/env python3
"""Makes examples/finetune/verses.jsonl from the bundled King James Bible (Data/Corpus/kjv.txt.gz): supervised pairs that ask
for the book a verse is from, {"prompt": "<verse>\\nBook:", "completion": " <book>"}, every 25th verse shorter than 200 characters
(1,077 pairs), shuffled with a fixed seed so that the held-out tail asks about the same books as the rest.

  make_data.py [OUT]
"""
import gzip
import json
import os
import random
import re
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "examples", "finetune", "verses.jsonl")
heading = re.compile(r"^((?:[123] )?[A-Z][A-Za-z ]+?) \d+$")
book, count, pairs = None, 0, []
with gzip.open(os.path.join(root, "Data", "Corpus", "kjv.txt.gz"), "rt", encoding="utf-8") as corpus:
    for line in corpus:
        line = line.strip()
        match = heading.match(line)
        if match:
            book = match.group(1)
            continue
        if not line or book is None:
            continue
        count += 1
        if count % 25 == 0 and len(line) < 200:
            pairs.append({"prompt": f"{line}\nBook:", "completion": f" {book}"})
random.Random(2026).shuffle(pairs)
with open(out, "w", encoding="utf-8") as f:
    f.writelines(json.dumps(p) + "\n" for p in pairs)
