import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from submission.encoders import ENCODERS, ParseError, get_encoder, parse_answer

grids = st.tuples(st.integers(1, 30), st.integers(1, 30)).flatmap(
    lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 9))
)


@pytest.mark.parametrize("name", sorted(ENCODERS))
@given(grid=grids)
@settings(max_examples=200)
def test_encoders_round_trip(name, grid):
    encoder = ENCODERS[name]
    text = encoder.encode(grid)
    np.testing.assert_array_equal(encoder.decode(text), grid)
    # and as the model completes it: after the opened answer, the stop string cut off
    completion = text[len(encoder.answer_start):].removesuffix("```")
    np.testing.assert_array_equal(parse_answer(encoder, completion), grid)


def test_arc24_format_is_exact():
    grid = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    assert get_encoder("shape-row-numbers").encode(grid) == "```grid shape: 2x2\n1 12\n2 34\n```"
    assert get_encoder("minimal").encode(grid) == "12\n34"
    assert get_encoder("code-block-minimal").encode(grid) == "```grid\n12\n34\n```"
    assert parse_answer(get_encoder("shape-row-numbers"), " shape: 1x2\n1 10\n").tolist() == [[1, 0]]


JUNK = [
    "", " ", "\n", "```", " shape: 2x2\n1 12\n", " shape: 2x2\n1 12\n2 3", " shape: 1x2\n1 1a\n",
    " shape: 1x2\n2 10\n", " shape: 99x2\n1 10\n", " shape: 1x2\n1 10\n```\nmore text",
    " shape: 1x31\n1 " + "1" * 31 + "\n", " shape: 1x2\n1 ١٢\n", "\x00\xff\ufffd",
    " shape: 0x0\n", " shape: 1x2\n1 -1\n", "grid shape", " shape: 2x1\n1 1\n\n2 1\n",
]


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("text", JUNK)
def test_junk_and_truncated_completions_are_parse_errors(name, text):
    with pytest.raises(ParseError):
        parse_answer(ENCODERS[name], text)


def test_a_whole_grid_cut_at_its_stop_string_is_accepted_and_nothing_less():
    # vLLM returns the completion without the stop string ```: the grid is whole, so it counts
    encoder = get_encoder("shape-row-numbers")
    assert parse_answer(encoder, " shape: 1x2\n1 10").tolist() == [[1, 0]]
    assert parse_answer(encoder, " shape: 1x2\n1 10\n```").tolist() == [[1, 0]]
    for cut in (" shape: 1x2\n1 1", " shape: 1x2\n1 ", " shape: 1x2\n", " shape: 1x2"):
        with pytest.raises(ParseError):
            parse_answer(encoder, cut)


@given(st.text(max_size=300))
@settings(max_examples=500)
def test_random_text_never_raises_anything_but_parse_error(text):
    # parse_answer lets any other exception out, so a decoder bug fails this test
    for encoder in ENCODERS.values():
        try:
            parse_answer(encoder, text)
        except ParseError:
            pass


def test_a_decoder_bug_is_not_turned_into_a_parse_error(monkeypatch):
    from submission import encoders

    def broken(self, text):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(encoders.Minimal, "decode", broken)
    with pytest.raises(ZeroDivisionError):
        parse_answer(get_encoder("shape-row-numbers"), " shape: 1x2\n1 10")


@given(grids, st.integers(0, 2000))
@settings(max_examples=300)
def test_truncated_answers_are_errors_in_the_shape_format(grid, cut):
    encoder = get_encoder("shape-row-numbers")
    completion = encoder.encode(grid)[len(encoder.answer_start):].removesuffix("```")
    truncated = completion[: min(cut, len(completion) - 2)]
    with pytest.raises(ParseError):
        parse_answer(encoder, truncated)
