#!/usr/bin/env python3
"""A byte-level BPE tokenizer in the form of GPT-2's (Radford et al. 2019), in plain Python, sharing no code with Elastic or
Microsoft.ML.Tokenizers: it trains the tokenizer Elastic ships (examples/tokenizer/kjv-bpe-2k.json, a Hugging Face
tokenizer.json) and encodes text with any such file, so the tests can check that Elastic's tokenizer agrees with it.

  bpe.py train CORPUS.txt OUT.json [VOCAB]    learn merges until VOCAB ids (256 bytes + merges + <|endoftext|>; default 2048)
  bpe.py encode TOKENIZER.json TEXT_FILE      print the ids of the file's text, space separated

Pre-tokenization is GPT-2's pattern with Python's re: letters are [^\\W\\d_], numbers \\d (the same as \\p{L} and \\p{N} on
text without letter-like digits or other numerals).
"""
import collections
import json
import re
import sys

SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")
END_OF_TEXT = "<|endoftext|>"


def byte_alphabet():
    """GPT-2's reversible map of the 256 bytes to printable characters (space is 'Ġ')."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def words(text, alphabet):
    return ["".join(alphabet[b] for b in piece.encode("utf-8")) for piece in SPLIT.findall(text)]


def train(corpus, out, vocab_size):
    alphabet = byte_alphabet()
    counts = collections.Counter(words(open(corpus, encoding="utf-8").read(), alphabet))
    symbols = {w: list(w) for w in counts}
    vocab = {alphabet[b]: b for b in range(256)}
    merges = []
    while len(vocab) < vocab_size - 1:
        pairs = collections.Counter()
        for w, n in counts.items():
            s = symbols[w]
            for a, b in zip(s, s[1:]):
                pairs[a, b] += n
        if not pairs:
            break
        # The most frequent pair; ties to the smaller pair, so the result does not depend on dictionary order.
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merged = best[0] + best[1]
        merges.append(best)
        vocab[merged] = len(vocab)
        for w in counts:
            s = symbols[w]
            i, out_symbols = 0, []
            while i < len(s):
                if i + 1 < len(s) and s[i] == best[0] and s[i + 1] == best[1]:
                    out_symbols.append(merged)
                    i += 2
                else:
                    out_symbols.append(s[i])
                    i += 1
            symbols[w] = out_symbols
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": len(vocab), "content": END_OF_TEXT, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)


def encode(tokenizer_file, text_file):
    tokenizer = json.load(open(tokenizer_file, encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    ranks = {tuple(m.split(" ")) if isinstance(m, str) else tuple(m): i for i, m in enumerate(tokenizer["model"]["merges"])}
    specials = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    alphabet = byte_alphabet()
    text = open(text_file, encoding="utf-8").read()
    ids = []
    pattern = "(" + "|".join(re.escape(s) for s in specials) + ")" if specials else None
    for part in re.split(pattern, text) if pattern else [text]:
        if part in specials:
            ids.append(specials[part])
            continue
        for word in words(part, alphabet):
            s = list(word)
            while len(s) > 1:
                ranked = [(ranks.get((a, b), len(ranks)), i) for i, (a, b) in enumerate(zip(s, s[1:]))]
                rank, i = min(ranked)
                if rank == len(ranks):
                    break
                s[i:i + 2] = [s[i] + s[i + 1]]
            ids.extend(vocab[t] for t in s)
    print(" ".join(str(i) for i in ids))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 2048)
    elif sys.argv[1] == "encode":
        encode(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
