"""The Python values of C data a library session passes and receives: pointers, callbacks, and struct or union
values (a bytearray laid out as the C compiler lays it out, with a property per member)."""

from __future__ import annotations

import struct

from cprof import _native
from cprof.library.prototypes import Array, CType, Enum, Pointer as PointerType, Record, Scalar


class Pointer:
    """An address the library handed out (a result, a member, a callback's argument). Only what a library gave
    can be passed back as a pointer: Python ints are not pointers, so no made-up address reaches a call."""

    __slots__ = ("address", "type", "_library")

    def __init__(self, address: int, type: str = "void *", library=None):
        self.address, self.type, self._library = address, type, library

    def __repr__(self) -> str:
        return f"<Pointer ({self.type}) 0x{self.address:x}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, Pointer) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    def read(self, type: str = "unsigned char", count: int | None = None):
        """The value(s) of C type `type` (a name the header declares, or a basic C type) at this address: one value,
        or a list of `count`. The library vouches for the memory, as it would in C."""
        kind = self._library.type_named(type) if self._library is not None else None
        if kind is None:
            raise ValueError(f"cannot read '{type}' through a pointer of no library")
        if isinstance(kind, Record):
            size = self._library.record_class(kind).size
            values = [self._library.record_class(kind)._from_raw(_native.ffi_read(self.address + i * size, size))
                      for i in range(count or 1)]
        else:
            code = _code(kind)
            size = struct.calcsize("=" + code)
            raw = _native.ffi_read(self.address, size * (count or 1))
            values = [_decode(kind, value, self._library) for value in struct.unpack(f"={count or 1}{code}", raw)]
        return values if count is not None else values[0]

    def string(self, encoding: str | None = "utf-8") -> str | bytes:
        """The NUL-terminated string at this address (bytes with encoding=None)."""
        raw = _native.ffi_string(self.address)
        return raw if encoding is None else raw.decode(encoding, "replace")


class Callback(Pointer):
    """A Python callable behind a C function pointer (a libffi closure). Keep it alive as long as the library may
    call it: a callable passed straight into a call gets a callback that lasts only for that call."""

    __slots__ = ("function", "_closure")

    def __init__(self, closure, function, type: str):
        super().__init__(closure.address, type)
        self._closure, self.function = closure, function

    def __repr__(self) -> str:
        return f"<Callback ({self.type}) {getattr(self.function, '__qualname__', self.function)}>"


def _code(kind: CType) -> str:
    if isinstance(kind, (Scalar, Enum)):
        if kind.code == "g":
            raise TypeError("long double members cannot be read or written from Python")
        return kind.code
    if isinstance(kind, PointerType):
        return "Q"
    raise TypeError(f"'{kind.spelling}' is not a scalar")


def _decode(kind: CType, value, library):
    if isinstance(kind, PointerType):
        return library.pointer_value(kind, value) if value else None
    return value


class StructValue(bytearray):
    """A struct or union value: its bytes, and a property per member. Pass it where the function takes the struct
    or a pointer to it (the library then reads and writes these very bytes). Members that hold pointers keep
    what was stored in them alive (`_keep`) as long as this value."""

    __slots__ = ("_keep",)
    size = 0
    members: tuple[str, ...] = ()
    ctype: Record | None = None

    def __init__(self, fields: dict | None = None, /, **named):
        super().__init__(self.size)
        self._keep = {}
        for name, value in {**(fields or {}), **named}.items():
            if name not in self.members:
                raise TypeError(f"{type(self).__name__} has no member '{name}' (members: {', '.join(self.members)})")
            setattr(self, name, value)

    @classmethod
    def _from_raw(cls, raw: bytes) -> "StructValue":
        value = cls()
        value[:] = raw
        return value

    def __repr__(self) -> str:
        shown = []
        for name in self.members:
            try:
                shown.append(f"{name}={getattr(self, name)!r}")
            except TypeError:
                shown.append(f"{name}=?")
        return f"{type(self).__name__}({', '.join(shown)})"

    __str__ = __repr__  # bytearray's own would show the bytes

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and bytes(self) == bytes(other)

    __hash__ = None

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.members}


def member_property(library, name: str, kind: CType, offset: int) -> property:
    """How one member reads and writes its bytes."""
    if isinstance(kind, Record):
        cls = library.record_class(kind)

        def get(self):
            return cls._from_raw(self[offset:offset + cls.size])

        def put(self, value):
            made = value if isinstance(value, cls) else cls(value) if isinstance(value, dict) else None
            if made is None:
                raise TypeError(f"member '{name}' takes a {cls.__name__} or a dict, not {type(value).__name__}")
            self[offset:offset + cls.size] = made
            self._keep.update({f"{name}.{k}": v for k, v in made._keep.items()})
        return property(get, put)
    if isinstance(kind, Array):
        element, length = kind.element, kind.length or 0
        if isinstance(element, Record):
            raise_on = f"member '{name}' is an array of structs, which cprof does not read or write"

            def unsupported(self, value=None):
                raise TypeError(raise_on)
            return property(unsupported, unsupported)
        code = _code(element)
        layout = struct.Struct(f"={length}{code}")
        text = isinstance(element, Scalar) and element.is_char

        def get(self):
            values = layout.unpack_from(self, offset)
            if text:
                raw = bytes(v & 0xFF for v in values)
                return raw.split(b"\0", 1)[0]
            return list(values)

        def put(self, value):
            if text and isinstance(value, (bytes, str)):
                raw = value.encode() if isinstance(value, str) else value
                if len(raw) > length:
                    raise OverflowError(f"member '{name}' holds {length} chars, not {len(raw)}")
                self[offset:offset + length] = raw.ljust(length, b"\0")
                return
            values = list(value)
            if len(values) != length:
                raise TypeError(f"member '{name}' holds {length} values, not {len(values)}")
            try:
                layout.pack_into(self, offset, *values)
            except struct.error as error:
                raise OverflowError(f"member '{name}': {error}") from None
        return property(get, put)
    if isinstance(kind, PointerType):
        def get(self):
            (address,) = struct.unpack_from("=Q", self, offset)
            return library.pointer_value(kind, address) if address else None

        def put(self, value):
            address, keep = library.pointer_member(kind, value, name)
            struct.pack_into("=Q", self, offset, address)
            self._keep[name] = keep
        return property(get, put)
    code = _code(kind)
    names = kind.names if isinstance(kind, Enum) else {}

    def get(self):
        return struct.unpack_from("=" + code, self, offset)[0]

    def put(self, value):
        if isinstance(value, str) and value in names:
            value = names[value]
        if not isinstance(value, (int, float)) or (isinstance(value, float) and code not in "fd"):
            raise TypeError(f"member '{name}' ({kind.spelling}) takes {'a float' if code in 'fd' else 'an int'}, "
                            f"not {type(value).__name__}")
        try:
            struct.pack_into("=" + code, self, offset, value)
        except struct.error as error:
            raise OverflowError(f"member '{name}' ({kind.spelling}): {value!r} is out of range ({error})") from None
    return property(get, put)


_native.ffi_setup(Pointer, StructValue)
