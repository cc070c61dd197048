import pytest

from kvcalc.errors import InputError
from kvcalc.units import parse_bytes, parse_tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("8192", 8192),
        ("32k", 32_000),  # lower-case k is decimal, as vLLM's human_readable_int reads it
        ("32K", 32 * 1024),  # upper-case K is binary: 32,768
        ("128K", 131_072),
        ("1m", 1_000_000),
        ("1M", 1_048_576),
        ("25.6k", 25_600),
    ],
)
def test_parse_tokens(text: str, tokens: int) -> None:
    assert parse_tokens(text) == tokens


@pytest.mark.parametrize("bad", ["-5", "0", "abc", "12q", "2.5K", "9999999999"])
def test_parse_tokens_rejects(bad: str) -> None:
    with pytest.raises(InputError):
        parse_tokens(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("80GB", 80 * 10**9),
        ("80GiB", 80 * 2**30),
        ("64G", 64 * 2**30),  # a bare prefix means binary, as RAM is sold
        ("512MiB", 512 * 2**20),
        ("1.5TB", 1_500_000_000_000),
        ("512", 512),
    ],
)
def test_parse_bytes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


def test_parse_bytes_rejects_garbage() -> None:
    with pytest.raises(InputError):
        parse_bytes("lots")
