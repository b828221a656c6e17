"""Reference WordPiece tokenization, written independently of the JavaScript port under test.

This follows BERT's original algorithm (google-research/bert tokenization.py, which Hugging Face's
BertTokenizer implements and BertTokenizerFast reproduces): clean text, space out CJK characters,
lower-case and strip accents, split on punctuation, then greedy longest-match WordPiece.

Reads JSON lines {"text": ..., "max_length": N} on stdin, writes JSON lines {"ids": [...]} on stdout.
Usage: python3 bert_reference_tokenizer.py VOCAB_TXT < texts.jsonl > ids.jsonl
"""
import json
import sys
import unicodedata


def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


def basic_tokenize(text):
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        cleaned.append(" " if is_whitespace(ch) else ch)
    spaced = []
    for ch in cleaned:
        spaced.append(f" {ch} " if is_cjk(ord(ch)) else ch)
    words = []
    for token in "".join(spaced).split():
        token = unicodedata.normalize("NFD", token.lower())
        token = "".join(ch for ch in token if unicodedata.category(ch) != "Mn")
        current = []
        for ch in token:
            if is_punctuation(ch):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(ch)
            else:
                current.append(ch)
        if current:
            words.append("".join(current))
    return words


def wordpiece(word, vocab, unk="[UNK]", max_chars=100):
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                found = piece
                break
            end -= 1
        if found is None:
            return [unk]
        pieces.append(found)
        start = end
    return pieces


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    for line in sys.stdin:
        request = json.loads(line)
        pieces = [p for w in basic_tokenize(request["text"]) for p in wordpiece(w, vocab)]
        ids = [vocab[p] for p in pieces][: request["max_length"] - 2]
        print(json.dumps({"ids": [vocab["[CLS]"]] + ids + [vocab["[SEP]"]]}))


if __name__ == "__main__":
    main()
