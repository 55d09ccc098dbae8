"""Access-log lines, pure: the versioned schema and the time windows of the stats.

- ``schema``  ``FIELDS`` (name, type, meaning) of schema version ``SCHEMA_VERSION``,
              ``normalize(record)``: one received line checked and put in column order.
- ``window``  ``bucket_seconds("1m")``, ``parse_since("1h")``, ``parse_instant(...)``:
              the time range and bucket of a stats question, with ``now`` passed in.

The edge writes the lines (``owncdn.edge.accesslog``), spools and ships them
(``owncdn.edge.logspool``, ``owncdn.edge.logship``); the control plane loads them into
DuckDB (``owncdn.control.analytics``). ``docs/logs.md`` documents every field.
"""
