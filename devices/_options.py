"""One typed parser for backend options (the ``/k=v`` parts of a device string).

A backend declares its options as a frozen dataclass whose fields are made with
:func:`option`; :meth:`Options.from_spec` turns ``spec.options`` (strings) into
typed values. An unknown option raises ``ValueError`` naming the valid ones, and
a bad value raises ``ValueError`` naming the option, the value and what is
expected, so ``fake/tpyo=1`` says what to type instead.

Field types: ``bool`` (``0`` or ``1``), ``int``, ``float`` (finite unless the
field says ``finite=False``: ``nan`` and ``inf`` are refused), ``str`` (optionally
one of ``choices``), each possibly ``| None`` (the option was not given), or any
type with a ``parse`` function.

``cores`` (every backend's) is a comma-separated list of this machine's CPU
numbers, e.g. ``cores=2,3``; a CPU the machine does not have is refused, naming
its count. Backends whose ``cores`` are another machine's (phones) set the class
attribute ``cores_here = False`` and check them themselves.

Two hooks for what one field cannot say: :meth:`Options.problems` (ranges such
as ``(0, 1]``, relations between options), checked after parsing and reported in
the same words, and the class attribute ``invalid``, the words a bad value's
error starts with.

Examples
--------
>>> @dataclasses.dataclass(frozen=True)
... class Demo(Options):
...     noise: float = option(0.03, minimum=0.0)
...     mode: str = option("eager", choices=("eager", "graph"))
>>> Demo.from_options({"noise": "0.1"}, device="demo")
Demo(cores=None, noise=0.1, mode='eager')
>>> Demo.from_options({"nosie": "0.1"}, device="demo")
Traceback (most recent call last):
...
ValueError: Invalid option nosie='0.1' for device 'demo'; valid options: cores, mode, noise
>>> Demo.from_options({"mode": "fast"}, device="demo")
Traceback (most recent call last):
...
ValueError: Invalid mode='fast' for device 'demo'; valid: eager, graph
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:  # only annotations: devices/_base.py imports this module to parse every backend's options
    from hwlat.devices._base import DeviceSpec

__all__ = ["Options", "option"]

OptionsT = TypeVar("OptionsT", bound="Options")


def option(
    default: Any = None,
    *,
    choices: Sequence[str] | None = None,
    minimum: float | None = None,
    above: float | None = None,
    finite: bool = True,
    parse: Callable[[str], Any] | None = None,
    hint: str = "",
) -> Any:
    """A dataclass field for one backend option.

    Parameters
    ----------
    default
        The value when the option is not given.
    choices : sequence of str, optional
        The valid values of a ``str`` option.
    minimum : float, optional
        The smallest valid value of a number.
    above : float, optional
        A number must be greater than this (e.g. ``above=0.0`` for a rate that divides).
    finite : bool, optional
        ``False`` lets a ``float`` be ``nan`` or ``inf`` (refused by default).
    parse : callable, optional
        ``text -> value`` for other types; it raises ``ValueError`` with the reason.
    hint : str, optional
        What a valid value looks like, said when the value is bad (numbers).
    """
    meta = {
        "choices": tuple(choices) if choices else None,
        "minimum": minimum,
        "above": above,
        "finite": finite,
        "parse": parse,
        "hint": hint,
    }
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Options:
    """Base class of typed backend options; every backend knows ``cores``.

    ``cores`` pins the launching CPU thread (see ``Backend.session``); it stays a
    string because ``pinned_cpus`` reads it.
    """

    invalid: ClassVar[str] = "Invalid"  # a bad value's error starts "{invalid} name='text' for device ..."
    cores_here: ClassVar[bool] = True  # False: ``cores`` are another machine's CPUs, checked by the backend

    cores: str | None = option(None)

    def problems(self) -> Iterable[tuple[str, str]]:
        """What is wrong beyond one field's type and minimum, as ``(name, reason)`` pairs; none here.

        Subclasses override it for ranges and checks across options;
        :meth:`from_options` raises on the first pair, naming the option and its value.
        """
        return ()

    @classmethod
    def names(cls) -> list[str]:
        """The valid option names, sorted."""
        return sorted(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_spec(cls: type[OptionsT], spec: DeviceSpec) -> OptionsT:
        """The options of ``spec`` (a :class:`DeviceSpec`), typed and checked."""
        return cls.from_options(dict(spec.options), device=spec.backend)

    @classmethod
    def from_options(cls: type[OptionsT], options: Mapping[str, str], device: str) -> OptionsT:
        """Typed options from ``{name: text}``; ``ValueError`` naming the option for a bad one."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, value in sorted(options.items()):
            if name not in fields:
                raise ValueError(
                    f"Invalid option {name}={value!r} for device {device!r}; valid options: {', '.join(cls.names())}"
                )
        if "cores" in options and cls.cores_here:
            problem = _cores_problem(str(options["cores"]))
            if problem:
                raise ValueError(f"{cls.invalid} cores={str(options['cores'])!r} for device {device!r}: {problem}")
        hints = _hints(cls)
        kwargs = {
            name: _convert(fields[name], hints[name], str(text), device, cls.invalid) for name, text in options.items()
        }
        parsed = cls(**kwargs)
        for name, reason in parsed.problems():
            value = options.get(name, getattr(parsed, name))
            raise ValueError(f"{cls.invalid} {name}={str(value)!r} for device {device!r}: {reason}")
        return parsed


def _cores_problem(text: str) -> str | None:
    """Why ``text`` is not a list of this machine's CPUs (``"2,3"``), or ``None``."""
    count = os.cpu_count() or 1
    fix = f"give CPU numbers 0..{count - 1} separated by commas, e.g. cores=0 (this machine has {count} CPUs)"
    parts = text.split(",")
    if not text or not all(p.strip().isdigit() for p in parts):
        return fix
    too_big = [int(p) for p in parts if int(p) >= count]
    if too_big:
        return f"CPU {too_big[0]} does not exist; {fix}"
    return None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(hint: Any) -> Any:
    """``float`` for ``float | None``; the hint itself otherwise."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _convert(field: dataclasses.Field, hint: Any, text: str, device: str, invalid: str = "Invalid") -> Any:
    meta, name = field.metadata, field.name
    bad = f"{invalid} {name}={text!r} for device {device!r}"
    if meta.get("parse") is not None:
        try:
            return meta["parse"](text)
        except ValueError as exc:
            raise ValueError(f"{bad}: {exc}") from None
    kind = _base_type(hint)
    if kind is bool:
        if text not in ("0", "1"):
            raise ValueError(f"{bad}; valid: 0, 1")
        return text == "1"
    if kind in (int, float):
        minimum = meta.get("minimum")
        reason = meta.get("hint") or ("must be an integer" if kind is int else "must be a number")
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{bad}: {reason}") from None
        if kind is float and meta.get("finite", True) and not math.isfinite(value):
            raise ValueError(f"{bad}: {meta.get('hint') or 'must be a finite number'}")
        if minimum is not None and not value >= minimum:
            raise ValueError(f"{bad}: {meta.get('hint') or f'must be >= {minimum:g}'}")
        above = meta.get("above")
        if above is not None and not value > above:
            raise ValueError(f"{bad}: {meta.get('hint') or f'must be > {above:g}'}")
        return value
    choices = meta.get("choices")
    if choices is not None and text not in choices:
        raise ValueError(f"{bad}; valid: {', '.join(choices)}")
    return text
