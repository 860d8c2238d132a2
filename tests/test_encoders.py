import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from submission.encoders import ENCODERS, ParseError, get_encoder, parse_answer, stop_strings

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

    monkeypatch.setattr(encoders.Minimal, "decode_lines", broken)
    with pytest.raises(ZeroDivisionError):
        parse_answer(get_encoder("shape-row-numbers"), " shape: 1x2\n1 10")


@pytest.mark.parametrize("name, completion", [
    ("row-numbers", "1 12\n2 "), ("row-numbers", "1 \n2 12"),
    ("shape-row-numbers", " shape: 1x2\n1 \n2 12\n```"), ("shape-row-numbers", " shape: 1x2\n1 12\n2 \n```"),
])
def test_an_empty_numbered_row_is_an_error_not_trimmed_away(name, completion):
    with pytest.raises(ParseError, match="is not a string of digits: ''"):
        parse_answer(get_encoder(name), completion)


@given(grids, st.integers(0, 2000))
@settings(max_examples=300)
def test_truncated_answers_are_errors_in_the_shape_format(grid, cut):
    encoder = get_encoder("shape-row-numbers")
    completion = encoder.encode(grid)[len(encoder.answer_start):].removesuffix("```")
    truncated = completion[: min(cut, len(completion) - 2)]
    with pytest.raises(ParseError):
        parse_answer(encoder, truncated)


def parse_error(decode, text) -> str:
    """The message of the ParseError that decoding ``text`` raises."""
    with pytest.raises(ParseError) as error:
        decode(text)
    return str(error.value)


LONG_JUNK = "x" * 45  # messages quote at most 40 characters of the offending text
QUOTED = repr("x" * 40)


@pytest.mark.parametrize("name, text, message", [
    ("minimal", "\n".join(["1"] * 31), "31 rows, more than 30"),
    ("minimal", "1" * 31, "31 columns, more than 30"),
    ("minimal", "12\n3a", "row 2 is not a string of digits: '3a'"),
    ("minimal", "12\n" + LONG_JUNK, f"row 2 is not a string of digits: {QUOTED}"),
    ("minimal", "12\n34\n5", "ragged grid: row 3 has 1 cells, row 1 has 2"),
    ("minimal", "12\n\n34", "row 2 is not a string of digits: ''"),  # a blank line inside is not skipped
    ("minimal", "12\n34X", "row 2 is not a string of digits: '34X'"),
    ("row-numbers", "1 12\n" + LONG_JUNK, f"line 2 does not start with its row number: {QUOTED}"),
    ("row-numbers", "1 12\n2 34X", "row 2 is not a string of digits: '34X'"),
    ("code-block-minimal", LONG_JUNK, f"does not open with '```grid': {QUOTED}"),
    ("code-block-minimal", "```grid\n12\n```\nmore text", "text after the closing fence"),
    # whitespace around the block is dropped, not whitespace on its rows
    ("code-block-minimal", "```grid\n12\n34 \n```", "row 2 is not a string of digits: '34 '"),
    ("code-block-row-numbers", "```grid\n 1 12\n```", "line 1 does not start with its row number: ' 1 12'"),
    ("code-block-minimal", "```grid\n12\n34X```", "row 2 is not a string of digits: '34X'"),
    ("shape-row-numbers", LONG_JUNK, f"does not open with '```grid shape: RxC': {QUOTED}"),
    ("shape-row-numbers", "```grid shape: 1x2\n1 123\n2 456\n```", "header says 1x2, grid is 2x3"),
])
def test_parse_errors_say_what_is_wrong(name, text, message):
    assert parse_error(get_encoder(name).decode, text) == message


def test_fenced_decoders_ignore_whitespace_around_the_block():
    assert get_encoder("code-block-minimal").decode("\n ```grid\n12\n```\n ").tolist() == [[1, 2]]
    assert get_encoder("shape-row-numbers").decode("\n```grid shape: 1x2\n1 12\n```\n").tolist() == [[1, 2]]


def test_minimal_writes_cells_outside_0_to_9_as_their_numbers():
    # no valid ARC grid has them; they must not turn into the ASCII bytes after '9' or before '0'
    assert get_encoder("minimal").encode([[0, 9], [10, 1]]) == "09\n101"
    assert get_encoder("minimal").encode([[-1, 0]]) == "-10"


def test_minimal_writes_an_empty_grid_as_empty_text():
    assert get_encoder("minimal").encode(np.zeros((0, 0), dtype=np.uint8)) == ""


def test_unknown_encoder_name_lists_the_choices():
    with pytest.raises(ValueError) as error:
        get_encoder("csv")
    assert str(error.value) == ("unknown grid encoder 'csv'; choose from shape-row-numbers, code-block-row-numbers, "
                                "code-block-minimal, row-numbers, minimal")


def test_only_fenced_encoders_stop_at_the_closing_fence():
    assert {name: stop_strings(encoder) for name, encoder in ENCODERS.items()} == {
        "shape-row-numbers": ["```"], "code-block-row-numbers": ["```"], "code-block-minimal": ["```"],
        "row-numbers": [], "minimal": [],
    }
