"""Readers, the word-level tokenizer and fixed-length encoding."""

import pytest
import torch

from omnidiffusion.text.corpus import generate_corpus
from omnidiffusion.text.data import (
    decode,
    encode,
    load_tokenizer,
    parse_mr,
    read_corpus,
    read_e2e,
    read_plain,
    read_rocstories,
    save_tokenizer,
    train_tokenizer,
)


def test_tokenizer_round_trip_and_specials(tmp_path):
    texts = [e.text for e in generate_corpus(200, seed=1)]
    tok = train_tokenizer(texts)
    assert [tok.id_to_token(i) for i in range(4)] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    ids = encode(tok, texts, 32)
    assert ids.shape == (200, 32)
    assert (ids[:, 0] == 2).all()
    assert decode(tok, ids) == texts
    save_tokenizer(tok, tmp_path)
    again = load_tokenizer(tmp_path)
    assert torch.equal(encode(again, texts, 32), ids)
    assert (tmp_path / "tokenizer.json").read_text().lstrip().startswith("{")  # JSON, not a pickle


def test_min_frequency_maps_rare_words_to_unk():
    tok = train_tokenizer(["a a a b", "a c c"], min_frequency=2)
    assert set(tok.get_vocab()) == {"[PAD]", "[UNK]", "[START]", "[END]", "a", "c"}
    assert encode(tok, ["a b c"], 6)[0].tolist() == [2, tok.token_to_id("a"), 1, tok.token_to_id("c"), 3, 0]


def test_encode_layout_and_too_long_text():
    tok = train_tokenizer(["x y z"])
    x, y = tok.token_to_id("x"), tok.token_to_id("y")
    assert encode(tok, ["x y"], 6).tolist() == [[2, x, y, 3, 0, 0]]
    with pytest.raises(ValueError, match="seq_len"):
        encode(tok, ["x y z x y"], 6)


def test_readers(tmp_path):
    e2e = tmp_path / "e2e.txt"
    e2e.write_text(
        "name : Aromi | Type : pub||Aromi is a pub .\n\nname[Zizzi], priceRange[£20-25]||Zizzi is a place .\n"
    )
    exs = read_e2e(e2e)
    assert exs[0].mr == {"name": "Aromi", "eatType": "pub"} and exs[0].text == "Aromi is a pub ."
    assert exs[1].mr == {"name": "Zizzi", "priceRange": "£20-25"}
    assert read_corpus(e2e)[1].text == "Zizzi is a place ."
    plain = tmp_path / "p.txt"
    plain.write_text("one line .\n\n two  lines .\n")
    assert [e.text for e in read_plain(plain)] == ["one line .", "two lines ."]
    roc = tmp_path / "roc.csv"
    roc.write_text("storyid,storytitle,sentence1,sentence2,sentence3,sentence4,sentence5\n1,t,A b.,C.,D.,E.,F.\n")
    assert read_rocstories(roc)[0].text == "A b. C. D. E. F."
    assert read_corpus(roc)[0].mr == {}


def test_bad_inputs(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        read_corpus(empty)
    with pytest.raises(ValueError, match="empty"):
        train_tokenizer([])
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_corpus(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("name : A||ok .\nno separator here\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        read_e2e(bad)
    with pytest.raises(ValueError, match="field"):
        parse_mr("cuisine : Thai")
    with pytest.raises(ValueError, match="sentence1"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        read_rocstories(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="tokenizers JSON"):
        (tmp_path / "tokenizer.json").write_bytes(b"\x80\x04not json")
        load_tokenizer(tmp_path)


def test_e2e_challenge_csv(tmp_path):
    from omnidiffusion.text.data import read_corpus, read_e2e_any, read_e2e_csv

    path = tmp_path / "trainset.csv"
    path.write_text(
        'mr,ref\n"name[The Eagle], eatType[coffee shop], food[French], area[riverside]",'
        '"The Eagle is a French coffee shop by the riverside."\n'
        '"name[Alimentum], familyFriendly[no]","Alimentum is  not family-friendly."\n'
        '"name[Alimentum], familyFriendly[no]",""\n'  # an empty reference: skipped
    )
    examples = read_e2e_csv(path)
    assert [e.text for e in examples] == [
        "The Eagle is a French coffee shop by the riverside.",
        "Alimentum is not family-friendly.",
    ]
    assert examples[0].mr["name"] == "The Eagle" and examples[0].mr["area"] == "riverside"
    assert examples[1].mr["name"] == "Alimentum" and len(examples[0].mr) == 4
    assert [e.text for e in read_corpus(path)] == [e.text for e in examples]  # auto: mr,ref header -> E2E CSV
    assert read_e2e_any(path)[0].mr == examples[0].mr
    bad = tmp_path / "devset.csv"
    bad.write_text("meaning,reference\nx,y\n")
    with pytest.raises(ValueError, match="expected CSV columns mr and ref"):
        read_e2e_csv(bad)
    stories = tmp_path / "stories.csv"
    stories.write_text("storyid,sentence1,sentence2,sentence3,sentence4,sentence5\n1,A.,B.,C.,D.,E.\n")
    assert read_corpus(stories)[0].text == "A. B. C. D. E."  # another CSV is still ROCStories
