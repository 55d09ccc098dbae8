"""The control plane (`owncdn control`): the one place that holds desired state.

Parts, each its own subpackage:

    store/      the state store: API tokens, immutable config versions per environment,
                registered nodes and what they run, purges and their acknowledgements.
                SQLAlchemy 2 over SQLite (one machine) or PostgreSQL (several
                control-plane replicas), with Alembic migrations shipped in the package.

Edges and DNS servers never import this package; they talk to it over HTTP.
"""
