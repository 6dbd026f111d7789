"""fmlab.jsonl: every malformed JSONL file a user can hand over is one line naming it."""

import pytest

from fmlab.errors import UserInputError
from fmlab.jsonl import read_objects


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": 1}\n\n{"a": 2', "f.jsonl:3: not JSON"),
        (b'{"a": 1}\n[1, 2]\n', "f.jsonl:2: expected an object with a"),
        (b'{"a": "caf\xe9"}\n', "cannot be read"),  # latin-1, not UTF-8
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "f.jsonl"
    path.write_bytes(content)
    with pytest.raises(UserInputError, match=message) as err:
        list(read_objects(path, "test file", "an object with a"))
    assert "\n" not in str(err.value)


def test_objects_come_with_where_they_are_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": 2}\n')
    assert list(read_objects(path, "test file", "x")) == [
        (f"{path}:1", {"a": 1}),
        (f"{path}:4", {"a": 2}),
    ]
    for missing in (tmp_path / "nope.jsonl", tmp_path):  # absent, or a directory
        with pytest.raises(UserInputError, match=r"test file .* does not exist"):
            list(read_objects(missing, "test file", "x"))
