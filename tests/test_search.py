"""The search engine (coopgis.search) on the sample dataset, against plain substring and equality checks."""

from __future__ import annotations

import numpy as np

from coopgis.search import SCORE, search_rows
from coopgis.text import key


def test_the_index_is_built_once_and_owned_by_the_dataset(dataset):
    assert dataset.search_index() is dataset.search_index()


def test_a_registration_number_finds_its_row_first(dataset):
    coll = dataset.collections["cooperatives"]
    row = len(coll) // 2
    reg = str(coll.frame["registration_no"].iat[row])
    hits = search_rows(dataset.search_index(), coll.row_of, reg, 5)
    assert hits[0] == (row, "registration_no", SCORE["registration_no"])


def test_name_matches_hold_every_word_of_the_query(dataset):
    coll = dataset.collections["cooperatives"]
    names = coll.frame["name"].tolist()
    word = key(names[7].split()[1], prefixes=False)
    hits = search_rows(dataset.search_index(), coll.row_of, word, 50)
    named = [r for r, match, _ in hits if match == "name"]
    assert named, "a word of a served name finds that name"
    assert all(word in key(names[r], prefixes=False).replace(" ", "") for r in named)
    scores = [s for _, _, s in hits]
    assert scores == sorted(scores, reverse=True)


def test_a_mask_keeps_only_allowed_rows(dataset):
    coll = dataset.collections["cooperatives"]
    mask = np.zeros(len(coll), bool)
    mask[::2] = True
    hits = search_rows(dataset.search_index(), coll.row_of, "تعاونی", 40, mask)
    assert hits and all(mask[r] for r, _, _ in hits)
