"""``--keep`` and ``--min-prob`` (scorer.filters): which names resolve to which genres, which rows are kept,
and the one-line messages for names no model knows."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.errors import UsageError
from scorer.filters import NEW_GENRE_HINT, KeepFilter, genre_key, resolve_genres, split_keep

GENRES = ["rock", "pop", "hiphop", "jazz"]
ALIASES = {"rap": "hiphop", "Hip-Hop": "hiphop", "bebop": "jazz", "polka": "nowhere"}
NAN = np.nan


def test_genre_key_ignores_case_spaces_hyphens_underscores_and_dots():
    assert {genre_key(n) for n in ["Hip-Hop", "hip hop", "HIP_HOP", "hip.hop", " hip -_. hop ", "hiphop"]} == {"hiphop"}
    assert genre_key("R&B") == "r&b"
    assert genre_key("Straße") == "strasse"  # casefold, not lower


def test_resolve_genres_by_name_and_alias_in_order_without_repeats():
    genres, unknown = resolve_genres(["Jazz", "rap", "polka", "HipHop", "bebop", "swing"], GENRES, ALIASES)
    assert genres == ["jazz", "hiphop"]
    # an alias pointing at a genre the model lacks resolves nothing
    assert unknown == ["polka", "swing"]
    assert resolve_genres(["rap"], GENRES) == ([], ["rap"])


def test_an_alias_never_shadows_a_genre_of_the_same_name():
    assert resolve_genres(["pop"], GENRES, {"pop": "rock"}) == (["pop"], [])


@pytest.mark.parametrize("min_prob", [-0.01, 1.01])
def test_min_prob_outside_zero_to_one_is_refused(min_prob):
    with pytest.raises(UsageError) as e:
        KeepFilter.parse("rock", GENRES, min_prob)
    assert e.value.cli_message == f"--min-prob must be between 0 and 1, got {min_prob}"


@pytest.mark.parametrize("min_prob", [0.0, 1.0])
def test_min_prob_at_either_end_is_accepted(min_prob):
    assert KeepFilter.parse("rock", GENRES, min_prob) == KeepFilter(("rock",), min_prob)


def test_parse_reads_comma_separated_names_with_spaces_and_aliases():
    assert KeepFilter.parse(" Rock , ,rap,ROCK,", GENRES, None, ALIASES) == KeepFilter(("rock", "hiphop"))
    assert KeepFilter.parse(None, GENRES) == KeepFilter()
    assert KeepFilter.parse(" , ", GENRES) == KeepFilter()


def test_unknown_genre_names_the_known_ones_three_aliases_and_how_to_train_one():
    with pytest.raises(UsageError) as e:
        KeepFilter.parse("rock,polka,swing", GENRES, None, ALIASES)
    hint = NEW_GENRE_HINT[0].upper() + NEW_GENRE_HINT[1:]
    assert e.value.cli_message == ("unknown genre(s) in --keep: polka, swing. This model knows: rock, pop, hiphop, "
                                   "jazz (and aliases such as rap, Hip-Hop, bebop: `scorer info` lists them). "
                                   + hint + ".")
    with pytest.raises(UsageError) as e:
        KeepFilter.parse("swing", GENRES)
    known = "rock, pop, hiphop, jazz"
    assert e.value.cli_message == f"unknown genre(s) in --keep: swing. This model knows: {known}. {hint}."


def test_min_prob_without_genres_is_refused():
    with pytest.raises(UsageError) as e:
        KeepFilter.parse(None, GENRES, 0.5)
    assert e.value.cli_message == "--min-prob needs --keep: it is the summed probability of the kept genres"


PROBA = np.array([[0.5, 0.3, 0.1, 0.1],    # rock on top
                  [0.2, 0.3, 0.25, 0.25],  # pop on top
                  [0.1, 0.1, 0.2, 0.6],    # jazz on top
                  [NAN, NAN, NAN, NAN],    # a failed row
                  [0.4, NAN, 0.3, 0.3]],   # a row with any NaN is a failure too
                 dtype=np.float32)


def test_no_genres_keeps_every_scored_row_and_no_failure():
    assert KeepFilter().apply(PROBA, GENRES).tolist() == [True, True, True, False, False]


def test_top_genre_decides_without_min_prob():
    assert KeepFilter(("pop", "jazz")).apply(PROBA, GENRES).tolist() == [False, True, True, False, False]
    assert KeepFilter(("rock",)).apply(PROBA, GENRES).tolist() == [True, False, False, False, False]


def test_min_prob_sums_the_kept_genres_and_keeps_a_row_that_reaches_it_exactly():
    proba = np.array([[0.25, 0.25, 0.5, 0.0], [0.2, 0.25, 0.55, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    # rock+pop: 0.5, 0.45, 0: only the first reaches 0.5, though hiphop is on top in both
    assert KeepFilter(("rock", "pop"), 0.5).apply(proba, GENRES).tolist() == [True, False, False]
    assert KeepFilter(("rock",), 0.25).apply(proba, GENRES).tolist() == [True, False, False]
    # a failed row is not kept even with min_prob 0
    assert KeepFilter(("rock",), 0.0).apply(PROBA, GENRES).tolist() == [True, True, True, False, False]


MODELS = [("", ["rock", "pop"], {"rap": "hiphop"}),
          ("mood", ["calm", "pop"], {"chill": "calm"}),
          ("era", ["seventies", "eighties"], {"70s": "seventies"})]


def test_split_keep_sends_each_name_to_the_first_model_that_knows_it():
    assert split_keep("rock, Pop ,chill,70s", MODELS) == ["rock,Pop", "chill", "70s"]
    assert split_keep(None, MODELS) == ["", "", ""]


def test_split_keep_name_colon_label_picks_the_model():
    assert split_keep("mood:pop,Era:eighties,pop", MODELS) == ["pop", "pop", "eighties"]
    assert split_keep("mood:chill,era:70s", MODELS) == ["", "chill", "70s"]  # that model's aliases count
    # a prefix that is no model's name is part of the label (and then unknown)
    with pytest.raises(UsageError) as e:
        split_keep("tempo:fast", MODELS)
    assert e.value.cli_message.startswith("unknown label(s) in --keep: tempo:fast. The models know")


def test_split_keep_a_model_name_given_twice_goes_to_the_first():
    models = [("", ["a"], {}), ("x", ["b"], {}), ("x", ["c"], {})]
    assert split_keep("x:b", models) == ["", "b", ""]
    with pytest.raises(UsageError) as e:
        split_keep("x:c", models)
    assert e.value.cli_message.startswith("unknown label(s) in --keep: x:c. The models know")


def test_split_keep_unknown_labels_list_every_models_labels():
    with pytest.raises(UsageError) as e:
        split_keep("rock,jazz,mood:rock", MODELS)
    assert e.value.cli_message == ("unknown label(s) in --keep: jazz, mood:rock. The models know the main model: "
                                   "rock, pop; mood: calm, pop; era: seventies, eighties (NAME:label picks one "
                                   "model's label)")
