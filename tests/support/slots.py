"""The Redis Cluster guard of the single-node tests: every Lua script call and every MULTI/EXEC
must touch keys of one hash slot (what a cluster demands, CROSSSLOT otherwise).

A single Redis accepts keys of any slots together, so a script or transaction that spans slots
passes every single-node test and fails only on a cluster. Installed for the whole run (see
tests/conftest.py), the guard fails such a call in whichever test makes it, before it is sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.crc import key_slot

KEYLESS = frozenset({b"MULTI", b"EXEC", b"DISCARD", b"WATCH", b"UNWATCH"})


class CrossSlotError(AssertionError):
    """Keys of one atomic operation in more than one hash slot."""


def _encoded(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def check_one_slot(what: str, keys: Sequence[Any]) -> None:
    """Raise :class:`CrossSlotError` unless every key of ``keys`` hashes to one slot."""
    slots = {key_slot(_encoded(key)) for key in keys}
    if len(slots) > 1:
        raise CrossSlotError(f"{what} touches keys of {len(slots)} hash slots: {list(keys)}")


def transaction_keys(command_stack: Sequence[Any]) -> list[Any]:
    """The keys of a MULTI/EXEC pipeline's queued commands: the first argument of each
    single-key command, the declared keys of an EVALSHA."""
    found: list[Any] = []
    for command in command_stack:
        args = command.args if hasattr(command, "args") else command[0]
        name = _encoded(args[0]).upper()
        if name in KEYLESS or len(args) < 2:
            continue
        if name in (b"EVALSHA", b"EVAL"):
            found += args[3 : 3 + int(args[2])]
        else:
            found.append(args[1])
    return found


@contextmanager
def installed() -> Iterator[None]:
    """Check every script call and MULTI/EXEC of this process while the context is open."""
    call, execute = AsyncScript.__call__, Pipeline.execute

    async def guarded_call(
        self: AsyncScript, keys: Sequence[Any] | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        check_one_slot("a Lua script", list(keys or []))
        return await call(self, keys, *args, **kwargs)

    async def guarded_execute(self: Pipeline, raise_on_error: bool = True) -> list[Any]:
        if self.is_transaction:
            check_one_slot("a MULTI/EXEC", transaction_keys(self.command_stack))
        return await execute(self, raise_on_error)

    AsyncScript.__call__ = guarded_call  # type: ignore[method-assign]
    Pipeline.execute = guarded_execute  # type: ignore[method-assign]
    try:
        yield
    finally:
        AsyncScript.__call__ = call  # type: ignore[method-assign]
        Pipeline.execute = execute  # type: ignore[method-assign]
