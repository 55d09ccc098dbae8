"""Secret references: rows of (text, expected value or error fragment)."""

import pytest

from owncdn.core.config.secrets import Secret, UnresolvedReference, interpolate

VALUES = {("env", "A"): "alpha", ("env", "B"): "beta", ("file", "t.txt"): "tok\n", ("file", "crlf"): "x\r\n", ("file", "two"): "y\n\n"}


def resolve(kind, name):
    if name == "locked":
        raise UnresolvedReference("permission denied")
    return VALUES.get((kind, name))


@pytest.mark.parametrize(("text", "value", "secret"), [
    ("plain", "plain", False),
    ("$HOME and $ sign", "$HOME and $ sign", False),
    ("$${env:A}", "${env:A}", False),
    ("${env:A}", "alpha", True),
    ("x-${env:A}-${env:B}", "x-alpha-beta", True),
    ("${file:t.txt}", "tok", True),
    ("${file:crlf}", "x", True),
    ("${file:two}", "y\n", True),
    ("$${env:A} ${env:B}", "${env:A} beta", True),
])
def test_interpolate(text, value, secret):
    out = interpolate(text, resolve)
    assert out == value
    assert isinstance(out, Secret) == secret
    if secret:
        assert repr(out) == f"Secret({text!r})"


@pytest.mark.parametrize(("text", "fragment"), [
    ("${env:NOPE}", "environment variable is not set"),
    ("${file:nope}", "file cannot be read"),
    ("${file:locked}", "cannot resolve '${file:locked}': permission denied"),
    ("${env:1BAD}", "not an environment variable name"),
    ("${secret:x}", "unknown reference"),
    ("${env:A", "unclosed '${'"),
    ("${file:}", "needs a path"),
    ("${env:NOPE} ${env:NADA}", "NADA"),
])
def test_interpolate_errors(text, fragment):
    with pytest.raises(ValueError) as info:
        interpolate(text, resolve)
    assert fragment in str(info.value)
