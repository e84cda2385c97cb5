#!/usr/bin/python3
"""Checks gpuml's byte-level BPE against the `tokenizers` library (PyPI) loading gpuml's file.

Usage: bpe_tokenizers_check.py GPUML_BINARY WORK_DIR
  1. `gpuml data tokenize` trains a 4,096-token BPE on tiny Shakespeare (../shared/data), and
     `gpuml data pack --tokenizer` encodes the corpus into token shards; `tokenizers` loads the
     same tokenizer.json and must encode the corpus to exactly the same ids (train + validation
     shards, concatenated), and decode them back to the corpus.
  2. The same on a multilingual text this script writes (Latin, Greek, Cyrillic, CJK, Arabic
     digits, emoji, contractions, tabs, no-break and other Unicode spaces, long runs of spaces),
     with a 450-token vocabulary: the pre-tokenizer's Unicode classes must agree too.
Exits 77 (skipped) when tokenizers or the corpus is missing (a failure under CI=true).
"""
import array, json, os, random, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ci_skip import skip  # noqa: E402

try:
    from tokenizers import Tokenizer
except ImportError as e:
    skip(f"tokenizers not installed ({e})")

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data",
                      "tinyshakespeare.txt")


def shard_tokens(dataset):
    with open(os.path.join(dataset, "manifest.json")) as f:
        manifest = json.load(f)
    (field,) = manifest["fields"]
    assert field["name"] == "tokens", field
    ids = array.array("H" if field["dtype"] == "u16" else "I")
    assert ids.itemsize == (2 if field["dtype"] == "u16" else 4)
    for split in ("train", "validation"):
        (s,) = [s for s in manifest["splits"] if s["name"] == split]
        for shard in s["shards"]:
            with open(os.path.join(dataset, shard["file"]), "rb") as f:
                ids.frombytes(f.read())
    if sys.byteorder != "little":
        ids.byteswap()
    return list(ids), manifest


def check(gpuml, work, name, corpus, vocab_size):
    tok = os.path.join(work, f"{name}.tokenizer.json")
    shards = os.path.join(work, f"{name}-tokens")
    subprocess.run([gpuml, "data", "tokenize", corpus, tok, "--vocab-size", str(vocab_size), "--quiet"], check=True)
    subprocess.run([gpuml, "data", "pack", corpus, shards, "--tokenizer", tok, "--shard-size", "64K", "--quiet"],
                   check=True)
    ours, manifest = shard_tokens(shards)
    assert manifest["vocab_size"] == vocab_size, manifest["vocab_size"]
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    hf = Tokenizer.from_file(tok)
    assert hf.get_vocab_size() == vocab_size, hf.get_vocab_size()
    theirs = hf.encode(text).ids
    if ours != theirs:
        at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        raise SystemExit(f"{name}: gpuml and tokenizers differ at token {at} of {len(ours)} / {len(theirs)}: "
                         f"gpuml {ours[at:at + 8]}, tokenizers {theirs[at:at + 8]} "
                         f"({hf.decode(theirs[max(0, at - 4):at + 8])!r})")
    back = hf.decode(ours)
    assert back == text, f"{name}: tokenizers' decoding of gpuml's ids is not the corpus"
    print(f"{name}: {len(text)} characters -> {len(ours)} tokens of a {vocab_size}-token vocabulary: "
          f"gpuml's encoding equals tokenizers' (which decodes it back exactly)")


def multilingual_text():
    rng = random.Random(5)
    words = ["the", "The", "don't", "we'll", "you're", "I've", "it's", "café", "naïve", "Ελληνικά", "λόγος",
             "русский", "язык", "中文", "日本語", "한국어", "١٢٣", "42", "3.14", "½", "²", "😀", "👍🏽", "—", "…",
             "«quote»", "x\u00a0y", "a\u2003b", "tab\there", "e\u0301", "\u200b", "\u3000", "$%&", "#1", "''", "'s"]
    seps = [" ", " ", " ", "  ", "\n", "\n\n", "   \n", "\t", ", ", ". "]
    return "".join(rng.choice(words) + rng.choice(seps) for _ in range(20000))


def main():
    gpuml, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    if not os.path.exists(CORPUS):
        skip(f"the corpus {CORPUS} is missing")
    check(gpuml, work, "tinyshakespeare", CORPUS, 4096)
    multi = os.path.join(work, "multilingual.txt")
    with open(multi, "w", encoding="utf-8") as f:
        f.write(multilingual_text())
    check(gpuml, work, "multilingual", multi, 450)


if __name__ == "__main__":
    main()
