"""Which services take a push, in the words the control plane and `owncdn push --dry-run`
both use.

Rules:
1. ``refusal(env, name, modes, envs)`` (``modes``: service name -> mode in the
   environment's latest version) is None for a push service, else ``(status, code,
   message)``: 404 ``unknown_service`` naming the services there are, or 422
   ``not_a_push_service`` naming the mode. ``unknown(env, name, modes, envs)`` is the
   404's message alone.
2. ``envs`` holds the environments that have a config version (``None``: not known,
   and nothing is said of them). An environment not among them (a mistyped ``--env``,
   or one never applied) is named as such, with those that have one (none named when
   ``envs`` is empty: the dry run only knows that this one has none), and how to apply
   a first version.
3. Pure: the caller reads the modes and environments.
"""

from __future__ import annotations

__all__ = ["refusal", "unknown"]


def unknown(env: str, name: str, modes: dict[str, str], envs=None) -> str:
    if envs is not None and env not in envs:
        others = f" (those with one: {', '.join(sorted(envs))})" if envs else ""
        return (f"environment '{env}' has no config version yet{others}: mistyped, or apply a cdn.yaml "
                f"with a push service '{name}' to it first: owncdn apply cdn.yaml --env {env}")
    known = f"its services: {', '.join(sorted(modes))}" if modes else "it has no services yet"
    return f"environment '{env}' has no service '{name}' in its latest version; {known}. Add it with mode: push and apply first"


def refusal(env: str, name: str, modes: dict[str, str], envs=None) -> tuple[int, str, str] | None:
    mode = modes.get(name)
    if mode is None:
        return 404, "unknown_service", unknown(env, name, modes, envs)
    if mode != "push":
        return 422, "not_a_push_service", (f"service '{name}' in '{env}' has mode {mode!r}; set mode: push "
                                           "(and drop its origins) to push releases to it")
    return None
