"""``edge.logs``: where an edge's access-log lines go besides ``edge.access_log``.

Rule 1: an edge that follows a control plane ships every line to it (``ship``), through
a spool on disk (``<state>/logs/control``) of at most ``spool_size`` bytes; when the
spool is full the oldest segment is dropped, counted and warned about (serving never
waits for a log sink).

Rule 2: each sink is one more destination with its own spool: ``file`` (a path,
appended to), ``stdout``, ``http`` (batches POSTed, gzip JSON lines, to a URL) and
``s3`` (``s3://bucket/prefix``: objects partitioned ``service=<s>/date=<YYYY-MM-DD>/``,
gzip JSON lines or, with ``format: parquet``, Parquet files of the schema's columns;
endpoint and keys from the ``AWS_*`` environment, so any S3-compatible store works).

Rule 3: the edge reads ``edge.logs`` at start; a change takes effect when it restarts.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WrapValidator, model_validator

from owncdn.core.fieldnames import check_header_name, check_header_value
from .secrets import keep_secret
from .units import ByteSize

__all__ = ["LogSettings", "LogSink"]

_Name = Annotated[str, AfterValidator(check_header_name)]
_Value = Annotated[str, WrapValidator(keep_secret), AfterValidator(check_header_value)]
_Text = Annotated[str, WrapValidator(keep_secret)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class LogSink(_Model):
    """One more place access-log lines go (Rule 2)."""

    type: Literal["file", "stdout", "http", "s3"] = Field(description="`file`, `stdout`, `http` or `s3`.")
    path: _Text | None = Field(None, description="`file`: the file lines are appended to (created with its directory).")
    url: _Text | None = Field(None, description="`http`: the http(s) URL batches are POSTed to; `s3`: `s3://bucket/prefix`.")
    headers: dict[_Name, _Value] = Field(default_factory=dict, description="`http`: extra request fields, e.g. `authorization: Bearer ${env:LOG_TOKEN}`.")
    format: Literal["jsonl", "parquet"] = Field("jsonl", description="`s3`: `jsonl` (gzip JSON lines) or `parquet` (one Parquet file per service and date of a batch, zstd, the log schema's columns).")
    spool_size: ByteSize = Field("256MiB", description="`http` and `s3`: bytes of lines kept on disk while the destination is away; when full the oldest segment is dropped.")

    @model_validator(mode="after")
    def _needs(self) -> LogSink:
        if self.type == "file" and not self.path:
            raise ValueError("a file sink needs `path`")
        if self.type == "http" and urlsplit(self.url or "").scheme not in ("http", "https"):
            raise ValueError(f"an http sink needs `url`: an http:// or https:// URL, got {self.url!r}")
        if self.format != "jsonl" and self.type != "s3":
            raise ValueError(f"`format: {self.format}` is for s3 sinks; a {self.type} sink writes JSON lines")
        if self.type == "s3":
            parts = urlsplit(self.url or "")
            if parts.scheme != "s3" or not parts.netloc:
                raise ValueError(f"an s3 sink needs `url`: s3://bucket/prefix, got {self.url!r}")
        return self


class LogSettings(_Model):
    """Log shipping of an edge (Rule 1); every field is optional."""

    ship: bool = Field(True, description="Ship every access-log line to the control plane the edge follows (for `owncdn stats`, `owncdn logs`).")
    spool_size: ByteSize = Field("256MiB", description="Bytes of lines kept on disk for the control plane while it is away; when full the oldest segment is dropped (counted and warned about).")
    sinks: list[LogSink] = Field(default_factory=list, description="More destinations: file, stdout, http, s3.")
