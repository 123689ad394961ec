"""The bundled corpus generator and the rule-based checker, on generator truth and hand-written cases."""

import pytest

from omnidiffusion.text.checker import extract_mr, has_value, keeps_words, normalise_field, normalise_value, word_count
from omnidiffusion.text.corpus import FIELDS, generate_corpus


def test_corpus_is_deterministic_and_varied():
    a, b = generate_corpus(300, seed=3), generate_corpus(300, seed=3)
    assert [e.line() for e in a] == [e.line() for e in b]
    assert [e.text for e in generate_corpus(300, seed=4)] != [e.text for e in a]
    assert len({e.text for e in a}) > 290  # templates x values give varied sentences
    assert all(word_count(e.text) <= 30 and e.mr["name"] for e in a)
    assert all(set(e.mr) <= set(FIELDS) for e in a)


def test_checker_recovers_the_generators_meaning_representation():
    """The generator's MR is the truth: every value it realised is found, and nothing else is."""
    for ex in generate_corpus(400, seed=11):
        found = extract_mr(ex.text)
        assert {f: {v} for f, v in ex.mr.items()} == found, ex.line()


@pytest.mark.parametrize(
    ("text", "field", "value", "expected"),
    [
        ("The Eagle is a kid friendly pub .", "familyFriendly", "yes", True),
        ("The Eagle is a pub . It is not kid friendly .", "familyFriendly", "yes", False),
        ("The Eagle is a pub . It is not kid friendly .", "familyFriendly", "no", True),
        ("Children are not welcome at Zizzi .", "familyFriendly", "yes", False),
        ("Children are welcome at Zizzi .", "familyFriendly", "yes", True),
        ("Zizzi is expensive .", "priceRange", "high", True),
        ("Zizzi has a high customer rating .", "priceRange", "high", False),
        ("Zizzi has a high customer rating .", "customer rating", "high", True),
        ("Zizzi costs £ 20 - 25 .", "price", "£20-25", True),
        ("Zizzi is in the city centre .", "area", "riverside", False),
        ("Aromi is a coffee shop .", "Type", "coffee shop", True),
        ("Aromi is a restaurant .", "eatType", "pub", False),
        ("An Indian place near The Bakers .", "near", "The Bakers", True),
        ("An Indian place near The Bakers .", "food", "Indian", True),
        ("An Indian place near The Bakers .", "food", "Chinese", False),
    ],
)
def test_checker_hand_written_cases(text, field, value, expected):
    assert has_value(text, field, value) is expected


def test_checker_field_and_value_spellings():
    assert normalise_field("family friendly") == "familyFriendly"
    assert normalise_field("customerRating") == "customer rating"
    assert normalise_value("priceRange", "more than £30") == "more than £ 30"
    with pytest.raises(ValueError, match="field"):
        normalise_field("cuisine")
    with pytest.raises(ValueError, match="not a known value"):
        has_value("text", "food", "Martian")


def test_word_count_and_kept_words():
    assert word_count("The Eagle is a pub .") == 6
    assert keeps_words(["The", None, "is"], "The Eagle is")
    assert not keeps_words(["The", None, "is"], "A Eagle is")
    assert not keeps_words(["The", None], "The Eagle is")
