from models.sentiment.tokenizer import UNK, Vocab, tokenize


def test_raw_text_maps_to_sst_conventions() -> None:
    assert tokenize("I LOVED it!!!") == ["i", "loved", "it", "!", "!", "!"]
    assert tokenize("It doesn't work, can't believe it's 3.5 stars") == [
        "it", "does", "n't", "work", ",", "ca", "n't", "believe", "it", "'s", "3.5", "stars",
    ]  # fmt: skip
    assert tokenize("“Wonderful” — truly…") == ['"', "wonderful", '"', "--", "truly", "..."]
    assert tokenize("We'll see; they're GREAT (really)") == ["we", "'ll", "see", ";", "they", "'re", "great", "(", "really", ")"]


def test_idempotent_on_sst_text() -> None:
    sst = "it 's a -lrb- great -rrb- film , does n't it ? ... heavy-handed"
    tokens = tokenize(sst)
    assert tokens == ["it", "'s", "a", "(", "great", ")", "film", ",", "does", "n't", "it", "?", "...", "heavy-handed"]
    assert tokenize(" ".join(tokens)) == tokens


def test_odd_unicode_never_raises() -> None:
    assert tokenize("") == []
    assert tokenize("\x00\u200b\ufeff") == []
    assert tokenize("emoji 😀 ok\x00") == ["emoji", "😀", "ok"]
    assert tokenize("مرحبا world") == ["مرحبا", "world"]
    assert tokenize("！！ＦＵＬＬ width") == ["!", "!", "full", "width"]  # NFKC


def test_vocab_unknown_words_and_round_trip() -> None:
    v = Vocab.build(["a good film", "a bad film , a film"])
    assert v.itos[:2] == ["<pad>", UNK]
    assert v.itos[2] in ("a", "film")  # most frequent first
    assert v.encode(["good", "zzz"]) == [v.stoi["good"], 1]
    assert Vocab.from_json(v.to_json()).itos == v.itos
