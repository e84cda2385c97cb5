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
  3. Added (special) tokens: tiny Shakespeare as documents separated by "<|endoftext|>" (one
     across the 1 MiB chunk boundary of gpuml's streaming) and a few "<|pad|>", through a
     tokenizer trained with `--special-tokens`; and the multilingual text with specials through a
     tokenizer that `tokenizers` itself trained (BpeTrainer with special_tokens: ids 0 and 1),
     which gpuml reads and packs. Same ids both ways; decoding keeps the special tokens' text.
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


def check(gpuml, work, name, corpus, vocab_size, specials=(), tok=None):
    shards = os.path.join(work, f"{name}-tokens")
    if tok is None:
        tok = os.path.join(work, f"{name}.tokenizer.json")
        subprocess.run([gpuml, "data", "tokenize", corpus, tok, "--vocab-size", str(vocab_size), "--quiet"] +
                       (["--special-tokens", ",".join(specials)] if specials else []), check=True)
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
    back = hf.decode(ours, skip_special_tokens=False)
    assert back == text, f"{name}: tokenizers' decoding of gpuml's ids is not the corpus"
    counts = {s: ours.count(hf.token_to_id(s)) for s in specials}
    assert all(counts[s] == text.count(s) for s in specials), (counts, [text.count(s) for s in specials])
    print(f"{name}: {len(text)} characters -> {len(ours)} tokens of a {vocab_size}-token vocabulary: "
          f"gpuml's encoding equals tokenizers' (which decodes it back exactly)" +
          (f"; special tokens {counts}" if specials else ""))


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

    # 3. Special tokens, as gpuml trains them and as tokenizers trains them.
    specials = ["<|endoftext|>", "<|pad|>"]
    with open(CORPUS, encoding="utf-8") as f:
        plays = f.read()
    docs = plays.replace("\n\n", "\n\n<|endoftext|>")
    docs = docs.replace("KING RICHARD", "KING<|pad|> RICHARD<|pad|><|endoftext|>")
    cut = (1 << 20) - 5  # a special across gpuml's first 1 MiB chunk boundary (ASCII text: bytes = chars)
    assert docs.isascii()
    docs = docs[:cut] + "<|endoftext|>" + docs[cut:]
    special_corpus = os.path.join(work, "documents.txt")
    with open(special_corpus, "w", encoding="utf-8") as f:
        f.write(docs)
    check(gpuml, work, "documents", special_corpus, 1024, specials)

    from tokenizers import decoders, models, pre_tokenizers, trainers
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    multi_docs = os.path.join(work, "multilingual-documents.txt")
    with open(multi_docs, "w", encoding="utf-8") as f:
        f.write(multilingual_text().replace("\n\n", "<|endoftext|>").replace("42", "<|pad|>42"))
    hf.train([multi_docs], trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False,
                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    theirs = os.path.join(work, "tokenizers-trained.json")
    hf.save(theirs)
    assert [hf.token_to_id(s) for s in specials] == [0, 1]
    check(gpuml, work, "tokenizers-trained", multi_docs, hf.get_vocab_size(), specials, tok=theirs)


if __name__ == "__main__":
    main()
