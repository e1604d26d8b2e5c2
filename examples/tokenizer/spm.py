#!/usr/bin/env python3
"""Trains the two SentencePiece models Elastic ships with Google's sentencepiece library (Debian's python3-sentencepiece),
and records the ids that library gives for a few texts, so the tests can check that Elastic (through Microsoft.ML.Tokenizers)
encodes and decodes exactly as the reference implementation does:

  kjv-spm-bpe-1k.model       BPE with byte fallback, as Llama 2's tokenizer is
  kjv-spm-unigram-1k.model   Unigram, as T5's and many others are
  kjv-spm-unigram-1k.json    the same Unigram model as a Hugging Face tokenizer.json (pieces and scores, Metaspace), as
                             Hugging Face's converter writes one
  spm-expected.json          {model: [{text, ids, decoded}]} from sentencepiece's encode and decode

  spm.py OUT_FOLDER          (run from the repository root; needs /usr/bin/python3 with sentencepiece)

Training reads the bundled Bible, with no normalization (as Llama's); special ids are <unk> 0, <s> 1, </s> 2 as Llama's are.
"""
import gzip
import io
import json
import os
import sys

import sentencepiece as spm

TEXTS = [
    "In the beginning God created the heaven and the earth.",
    "And the LORD spake unto Moses, saying,",
    "  Two spaces, tabs\tand digits 12345 in a line.",
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich: ψ, 東京, 🙂",
]


def write_tokenizer_json(processor, path):
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    tokenizer = {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": processor.id_to_piece(i), "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i in (0, 1, 2)],
        # sentencepiece's remove_extra_whitespaces: no leading or trailing spaces, runs of spaces as one.
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Strip", "strip_left": True, "strip_right": True},
                                                           {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": metaspace,
        "post_processor": None,
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": processor.unk_id(), "byte_fallback": False,
                  "vocab": [[processor.id_to_piece(i), processor.get_score(i)] for i in range(processor.get_piece_size())]},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
        f.write("\n")


def main():
    out = sys.argv[1]
    with gzip.open("Data/Corpus/kjv.txt.gz", "rt", encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    expected = {}
    for kind in ("bpe", "unigram"):
        name = f"kjv-spm-{kind}-1k"
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, model_type=kind, vocab_size=1000,
                                       byte_fallback=kind == "bpe", character_coverage=1.0, normalization_rule_name="identity", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                       num_threads=1, minloglevel=2)
        with open(os.path.join(out, name + ".model"), "wb") as f:
            f.write(model.getvalue())
        processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
        if kind == "unigram":
            write_tokenizer_json(processor, os.path.join(out, name + ".json"))
        expected[name + ".model"] = [{"text": t, "ids": processor.encode(t), "decoded": processor.decode(processor.encode(t))} for t in TEXTS]
    with open(os.path.join(out, "spm-expected.json"), "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(f" {json.dumps(name)}: [\n" + ",\n".join(f"  {json.dumps(e, ensure_ascii=False)}" for e in entries) + "\n ]"
                                  for name, entries in expected.items()) + "\n}\n")


if __name__ == "__main__":
    main()
