"""The bundled demo data: a deterministic generator of an E2E-like restaurant corpus.

The E2E NLG challenge (Novikova et al. 2017) pairs a meaning representation (MR) over eight fields with a
one- or two-sentence description. This module holds the same eight fields with E2E's value inventory and realises
each MR with varied, hand-written clause templates (several surface forms per value, free field order, one or two
sentences), so a seeded call always returns the same corpus. Text is pre-tokenised the E2E way: spaces around
punctuation (`family - friendly`, `£ 20 - 25`).

Lines use E2E's `MR||text` format with `field : value | field : value` MRs (the format Diffusion-LM reads), so the
same loaders read the real E2E files when a user has them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FIELDS = ("name", "eatType", "food", "priceRange", "customer rating", "area", "familyFriendly", "near")

NAMES = (
    "The Eagle", "The Mill", "Aromi", "Zizzi", "Cotto", "Giraffe", "The Vaults", "Loch Fyne", "Wildwood",
    "Fitzbillies", "Alimentum", "The Punter", "The Phoenix", "Clowns", "The Rice Boat", "Strada",
    "Browns Cambridge", "Green Man", "The Cricketers", "Blue Spice", "The Golden Curry", "The Twenty Two",
    "The Wrestlers", "The Dumpling Tree", "The Olive Grove", "The Waterman",
)  # fmt: skip
NEAR = (
    "Burger King", "Café Brazil", "Café Sicilia", "Clare Hall", "Crowne Plaza Hotel", "The Bakers",
    "The Portland Arms", "The Sorrento", "Ranch", "All Bar One", "Express by Holiday Inn", "The Six Bells",
    "Avalon", "Yippee Noodle Bar",
)  # fmt: skip

VALUES: dict[str, tuple[str, ...]] = {
    "name": NAMES,
    "eatType": ("restaurant", "coffee shop", "pub"),
    "food": ("Chinese", "English", "French", "Indian", "Italian", "Japanese", "fast food"),
    "priceRange": ("cheap", "moderate", "high", "less than £ 20", "£ 20 - 25", "more than £ 30"),
    "customer rating": ("low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5"),
    "area": ("city centre", "riverside"),
    "familyFriendly": ("yes", "no"),
    "near": NEAR,
}

# Surface forms per (field, value): adjectives before the noun, post-modifiers after it, and predicates of a
# second sentence ("It ..."). Every form contains one of the phrases `checker.PHRASES` looks for.
_PRICE_ADJ = {"cheap": ("cheap", "inexpensive"), "moderate": ("moderately priced",), "high": ("expensive",)}
_PRICE_MOD = {
    "cheap": ("with low prices",), "moderate": ("with moderate prices", "in the moderate price range"),
    "high": ("with high prices", "in the high price range"), "less than £ 20": ("with prices less than £ 20",),
    "£ 20 - 25": ("with a price range of £ 20 - 25",), "more than £ 30": ("with prices of more than £ 30",),
}  # fmt: skip
_PRICE_PRED = {
    "cheap": ("It is cheap", "It has low prices"), "moderate": ("It is moderately priced", "It has moderate prices"),
    "high": ("It is expensive", "It has high prices"), "less than £ 20": ("Prices are less than £ 20",),
    "£ 20 - 25": ("It has a price range of £ 20 - 25",), "more than £ 30": ("Meals cost more than £ 30",),
}  # fmt: skip
_RATING_MOD = {
    "low": ("with a low customer rating", "rated poorly by customers"),
    "average": ("with an average customer rating", "rated average by customers"),
    "high": ("with a high customer rating", "rated highly by customers"),
    "1 out of 5": ("rated 1 out of 5", "with a customer rating of 1 out of 5"),
    "3 out of 5": ("rated 3 out of 5", "with a customer rating of 3 out of 5"),
    "5 out of 5": ("rated 5 out of 5", "with a customer rating of 5 out of 5"),
}
_RATING_PRED = {
    "low": ("Its customer rating is low", "It has a low customer rating"),
    "average": ("Its customer rating is average", "It has an average customer rating"),
    "high": ("Its customer rating is high", "It has a high customer rating"),
    "1 out of 5": ("Customers rated it 1 out of 5",), "3 out of 5": ("Customers rated it 3 out of 5",),
    "5 out of 5": ("Customers rated it 5 out of 5",),
}  # fmt: skip
_AREA_MOD = {
    "city centre": ("in the city centre", "located in the city centre"),
    "riverside": ("in the riverside area", "by the riverside", "located on the riverside"),
}
_AREA_PRED = {"city centre": ("It is in the city centre",), "riverside": ("It is located by the riverside",)}
_FAMILY_ADJ = {"yes": ("family - friendly", "kid friendly"), "no": ()}
_FAMILY_MOD = {
    "yes": ("that is family - friendly",),
    "no": ("that is not family - friendly", "that is not kid friendly"),
}
_FAMILY_PRED = {
    "yes": ("It is kid friendly", "Children are welcome"),
    "no": ("It is not family - friendly", "Children are not welcome"),
}


@dataclass(frozen=True)
class Example:
    """One corpus line: the meaning representation (field -> value, E2E field names) and its description."""

    mr: dict[str, str]
    text: str

    def line(self) -> str:
        """The E2E-format line `field : value | field : value||text`."""
        return format_mr(self.mr) + "||" + self.text


def format_mr(mr: dict[str, str]) -> str:
    """`name : The Eagle | food : French` in FIELDS order."""
    return " | ".join(f"{f} : {mr[f]}" for f in FIELDS if f in mr)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return " , ".join(parts[:-1]) + " and " + parts[-1]


def random_mr(rng: random.Random) -> dict[str, str]:
    """An MR: always a name, then 2 to 6 of the other seven fields with uniform values."""
    others = list(FIELDS[1:])
    chosen = rng.sample(others, rng.randint(2, 6))
    mr = {"name": rng.choice(NAMES)}
    for f in FIELDS[1:]:
        if f in chosen:
            mr[f] = rng.choice(VALUES[f])
    return mr


def realise(mr: dict[str, str], rng: random.Random) -> str:
    """One description of `mr`; each field is mentioned exactly once, in a randomly chosen surface form."""
    name = mr["name"]
    noun = mr.get("eatType", rng.choice(("place", "venue")))
    adjs: list[str] = []
    mods: list[str] = []  # post-modifiers of the noun
    preds: list[str] = []  # second-sentence predicates
    food = mr.get("food")
    slots = [f for f in ("priceRange", "familyFriendly", "food", "area", "near", "customer rating") if f in mr]
    rng.shuffle(slots)
    for f in slots:
        v = mr[f]
        where = rng.random()
        if f == "priceRange":
            if v in _PRICE_ADJ and where < 0.4:
                adjs.append(rng.choice(_PRICE_ADJ[v]))
            else:
                (mods if where < 0.75 else preds).append(rng.choice(_PRICE_MOD[v] if where < 0.75 else _PRICE_PRED[v]))
        elif f == "familyFriendly":
            if _FAMILY_ADJ[v] and where < 0.4:
                adjs.append(rng.choice(_FAMILY_ADJ[v]))
            elif where < 0.7:
                mods.append(rng.choice(_FAMILY_MOD[v]))
            else:
                preds.append(rng.choice(_FAMILY_PRED[v]))
        elif f == "food":
            if where < 0.5:
                adjs.append(food)
            elif where < 0.8:
                mods.append(rng.choice(("serving", "that serves")) + f" {food} food")
            else:
                preds.append(rng.choice(("It serves", "It offers")) + f" {food} food")
        elif f == "area":
            (mods if where < 0.7 else preds).append(rng.choice(_AREA_MOD[v] if where < 0.7 else _AREA_PRED[v]))
        elif f == "near":
            if where < 0.7:
                mods.append(rng.choice(("near", "close to")) + f" {v}")
            else:
                preds.append(rng.choice(("It is near", "It is close to")) + f" {v}")
        else:
            (mods if where < 0.6 else preds).append(rng.choice(_RATING_MOD[v] if where < 0.6 else _RATING_PRED[v]))
    # Keep food adjectives next to the noun ("a cheap Chinese restaurant").
    adjs.sort(key=lambda a: a == food)
    np_words = " ".join([*adjs, noun])
    np_ = f"{_article(np_words)} {np_words}"
    tail = (" " + _join(mods)) if mods else ""
    form = rng.random()
    if form < 0.5:
        first = f"{name} is {np_}{tail} ."
    elif form < 0.8:
        first = f"There is {np_} called {name}{tail} ."
    else:
        first = f"{np_[0].upper()}{np_[1:]} called {name}{tail} ." if not tail else f"{name} is {np_}{tail} ."
    rest = " ".join(f"{p} ." for p in preds)
    return f"{first} {rest}".strip()


def generate_corpus(n: int = 6000, seed: int = 0, max_words: int = 30) -> list[Example]:
    """n deterministic examples (same n and seed -> same list); descriptions have at most `max_words` tokens."""
    if n < 1:
        raise ValueError(f"n: expected a positive number of examples, got {n}")
    if max_words < 12:
        raise ValueError(f"max_words: expected at least 12 (the longest one-field description), got {max_words}")
    rng = random.Random(seed)
    out: list[Example] = []
    while len(out) < n:
        mr = random_mr(rng)
        text = realise(mr, rng)
        if len(text.split()) <= max_words:
            out.append(Example(mr, text))
    return out


def demo_splits(n_train: int = 6000, n_valid: int = 500, n_test: int = 500, seed: int = 0) -> dict[str, list[Example]]:
    """The bundled train/valid/test splits: disjoint generator streams (seeds seed, seed+1, seed+2)."""
    return {
        "train": generate_corpus(n_train, seed),
        "valid": generate_corpus(n_valid, seed + 1),
        "test": generate_corpus(n_test, seed + 2),
    }
