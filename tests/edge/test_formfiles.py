"""owncdn.edge.formfiles: the compressed forms an edge keeps on disk (rules 1-5)."""

from __future__ import annotations

import logging
import os

import pytest

from owncdn.edge.formfiles import TRAILER, FormFiles

SHA = "ab" + "0" * 62 + "-b3"
OTHER = "cd" + "1" * 62


@pytest.fixture
def forms(tmp_path):
    return FormFiles(tmp_path / "forms")


def test_a_form_written_reads_back_as_it_was(forms):
    assert forms.read(SHA, "br") is None                      # none kept yet
    assert forms.write(SHA, "br", b"compressed bytes")
    assert forms.read(SHA, "br") == b"compressed bytes"
    assert forms.read(SHA, "gzip") is None                    # one file per coding
    path = forms.root / "ab" / f"{SHA}.br"                    # Rule 1: <sha[:2]>/<sha>.<coding>
    assert path.stat().st_size == len(b"compressed bytes") + TRAILER


def test_a_form_not_worth_sending_is_kept_as_an_empty_one(forms):
    assert forms.write(OTHER, "gzip", b"")                    # Rule 3
    assert forms.read(OTHER, "gzip") == b""


@pytest.mark.parametrize("spoil", [
    lambda raw: raw[:-1],                                     # cut short
    lambda raw: b"",                                          # never written back
    lambda raw: raw[:3],                                      # shorter than the digest
    lambda raw: b"X" + raw[1:],                               # a byte of the form changed
    lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]),              # a byte of the digest changed
    lambda raw: raw + b"more",                                # grown
])
def test_a_spoilt_form_reads_as_none_and_is_removed(forms, spoil):
    forms.write(SHA, "br", b"compressed bytes")
    path = forms.path(SHA, "br")
    path.write_bytes(spoil(path.read_bytes()))
    assert forms.read(SHA, "br") is None                      # Rule 2
    assert not path.exists()


@pytest.mark.parametrize("sha, coding", [
    ("../../etc/passwd", "br"), ("ab" * 32 + "/x", "br"), ("AB" * 32, "br"), (SHA, "b/r"), (SHA, "../br"), (SHA, ""),
])
def test_names_that_are_not_blob_names_or_codings_are_never_paths(forms, sha, coding):
    assert forms.path(sha, coding) is None                    # Rule 5
    assert forms.write(sha, coding, b"x") is False and forms.read(sha, coding) is None
    assert not forms.root.exists()


def test_collect_removes_the_forms_of_blobs_not_kept_and_other_processes_temporary_files(forms):
    for sha in (SHA, OTHER):
        for coding in ("br", "gzip"):
            forms.write(sha, coding, b"form of " + sha.encode())
    left = forms.root / "ab" / f"{SHA}.br.999999.3.tmp"       # another process stopped while writing
    left.write_bytes(b"half")
    ours = forms.root / "ab" / f"{SHA}.gzip.{os.getpid()}.7.tmp"  # this one is writing it now
    ours.write_bytes(b"being written")
    assert forms.collect({SHA}) == 3                          # Rule 4
    assert forms.read(SHA, "br") and forms.read(SHA, "gzip")
    assert forms.read(OTHER, "br") is None and forms.read(OTHER, "gzip") is None
    assert not left.exists() and ours.exists()


def test_collect_with_nothing_kept_yet_is_nothing(tmp_path):
    assert FormFiles(tmp_path / "never-made").collect(set()) == 0


def test_a_disk_that_refuses_loses_only_the_copy_on_disk(forms, caplog):
    forms.root.mkdir(parents=True)
    (forms.root / "ab").write_bytes(b"a file where the directory goes")
    with caplog.at_level(logging.WARNING, logger="owncdn.edge"):
        assert forms.write(SHA, "br", b"x") is False          # Rule 5
        assert forms.write(SHA, "gzip", b"y") is False
    assert forms.read(SHA, "br") is None
    warned = [r for r in caplog.records if "could not be kept on disk" in r.getMessage()]
    assert len(warned) == 1                                   # once per kind of error
