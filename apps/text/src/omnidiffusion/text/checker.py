"""Rule-based judges of control success: which MR values a text realises, its length, kept infill words.

Control success is never judged by the classifier that guided the sampler (that would be self-grading). Values
are found by phrase matching over tokens, as the E2E semantic-content score of Diffusion-LM does (the value string
occurs in the output), extended with the paraphrases the bundled corpus uses (`expensive` for priceRange=high)
and with negation for familyFriendly (`not kid friendly` is familyFriendly=no).
"""

from __future__ import annotations

import re

from .corpus import FIELDS, NAMES, NEAR, VALUES

# field -> value -> token phrases whose presence realises the value.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "name": {v: (v,) for v in NAMES},
    "near": {v: (v,) for v in NEAR},
    "eatType": {"restaurant": ("restaurant",), "coffee shop": ("coffee shop",), "pub": ("pub",)},
    "food": {v: (v,) for v in VALUES["food"]},
    "priceRange": {
        "cheap": ("cheap", "inexpensive", "low prices"),
        "moderate": ("moderately priced", "moderate prices", "moderate price range"),
        "high": ("expensive", "high prices", "high price range"),
        "less than £ 20": ("less than £ 20",),
        "£ 20 - 25": ("£ 20 - 25",),
        "more than £ 30": ("more than £ 30",),
    },
    "customer rating": {
        "low": ("low customer rating", "customer rating is low", "rated poorly"),
        "average": ("average customer rating", "customer rating is average", "rated average"),
        "high": ("high customer rating", "customer rating is high", "rated highly"),
        "1 out of 5": ("1 out of 5",),
        "3 out of 5": ("3 out of 5",),
        "5 out of 5": ("5 out of 5",),
    },
    "area": {"city centre": ("city centre",), "riverside": ("riverside",)},
    "familyFriendly": {
        "yes": ("family - friendly", "kid friendly", "children are welcome"),
        "no": ("not family - friendly", "not kid friendly", "children are not welcome"),
    },
}

# E2E spellings of field names seen in the wild (CSV header style, Diffusion-LM's `Type`, spaces).
FIELD_ALIASES = {
    "type": "eatType", "eattype": "eatType", "food": "food", "price": "priceRange", "pricerange": "priceRange",
    "customer rating": "customer rating", "customerrating": "customer rating", "rating": "customer rating",
    "area": "area", "family friendly": "familyFriendly", "familyfriendly": "familyFriendly", "near": "near",
    "name": "name",
}  # fmt: skip


def tokens(text: str) -> list[str]:
    """Lower-cased whitespace tokens (the corpus is pre-tokenised)."""
    return text.lower().split()


def _find(seq: list[str], phrase: list[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(seq) - n + 1) if seq[i : i + n] == phrase]


def normalise_field(field: str) -> str:
    """The canonical field name (FIELDS) of an E2E spelling; ValueError for an unknown field."""
    key = re.sub(r"\s+", " ", field.strip()).lower()
    canon = FIELD_ALIASES.get(key) or FIELD_ALIASES.get(key.replace(" ", ""))
    if canon is None:
        raise ValueError(f"field: expected one of {list(FIELDS)} (or an E2E spelling of one), got {field!r}")
    return canon


def normalise_value(field: str, value: str) -> str:
    """The corpus spelling of `value` (E2E's `£20-25` -> `£ 20 - 25`); ValueError for a value the checker lacks."""
    field = normalise_field(field)
    spaced = re.sub(r"\s+", " ", re.sub(r"([£\-])", r" \1 ", value)).strip()
    for cand in PHRASES[field]:
        if cand.lower() in (value.strip().lower(), spaced.lower()):
            return cand
    raise ValueError(f"value: {value!r} is not a known value of field {field!r}; known: {list(PHRASES[field])}")


def has_value(text: str, field: str, value: str) -> bool:
    """True when `text` realises `field = value` (phrase match; for familyFriendly=yes, not after `not`)."""
    field = normalise_field(field)
    value = normalise_value(field, value)
    seq = tokens(text)
    for phrase in PHRASES[field][value]:
        words = tokens(phrase)
        for i in _find(seq, words):
            if field == "familyFriendly" and value == "yes":
                negated = (i > 0 and seq[i - 1] == "not") or (words[0] == "children" and "not" in seq[i : i + 4])
                if negated:
                    continue
            return True
    return False


def extract_mr(text: str) -> dict[str, set[str]]:
    """Every field value `text` realises: {field: {values}} (a text may realise more than one value of a field)."""
    found: dict[str, set[str]] = {}
    for field, values in PHRASES.items():
        hits = {v for v in values if has_value(text, field, v)}
        if hits:
            found[field] = hits
    return found


def word_count(text: str) -> int:
    """Number of whitespace tokens (the length the length control targets)."""
    return len(text.split())


def keeps_words(template: list[str | None], text: str) -> bool:
    """True when `text` has exactly len(template) tokens and equals every given (non-None) template word."""
    words = text.split()
    if len(words) != len(template):
        return False
    return all(t is None or t == w for t, w in zip(template, words, strict=True))
