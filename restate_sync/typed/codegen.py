"""Struct loaders and dumpers, built once per dataclass / TypedDict (mostly generated source).

The loader of a JSON object with known keys and the dumper of a dataclass are Python source
compiled with ``exec``, once per struct: one straight-line function, no loop over the fields.
The source only names values bound in its own namespace (the field loaders, the class, the
messages); field names are embedded as ``repr`` literals. The TypedDict dumper, a closure over
the keys that need converting, sits beside them.
"""

from __future__ import annotations

from typing import Any

from .errors import Invalid, describe
from .nodes import Dumper, Loader, Node

_MISSING_KEY: Any = object()


def object_loader(desc: str, fields: list[tuple[str, Node, bool]], cls: type | None, label: str) -> Loader:
    """A loader compiled for a JSON object with known keys, building ``cls(**fields)`` or a dict.

    Per key: ``x = v.get(key)``, missing required → error, ``x = L(x)`` unless ``x`` is already of
    the field's exact scalar class; failures get the key appended to their path.
    """
    namespace: dict[str, Any] = {
        "Invalid": Invalid,
        "describe": describe,
        "M": _MISSING_KEY,
        "cls": cls,
        "EXPECTED": f"expected {desc}, got ",
        "INVALID": f"invalid {label}: ",
    }
    body = []
    for i, (key, node, required) in enumerate(fields):
        body.append(f"        f = {key!r}")
        body.append(f"        x = v.get({key!r}, M)")
        indent = "        "
        if required:
            body.append("        if x is M:")
            body.append("            raise Invalid('missing required ' + WHAT)")
        else:
            body.append("        if x is not M:")
            indent = "            "
        if node.load is not None:
            namespace[f"L{i}"] = node.load
            if node.exact is not None:
                namespace[f"E{i}"] = node.exact
                body.append(f"{indent}if x.__class__ is not E{i}:")
                body.append(f"{indent}    x = L{i}(x)")
            else:
                body.append(f"{indent}x = L{i}(x)")
        body.append(f"{indent}out[{key!r}] = x")
    namespace["WHAT"] = "field" if cls is not None else "key"
    if cls is not None:
        result = [
            "    try:",
            "        return cls(**out)",
            "    except Exception as exc:",
            "        raise Invalid(INVALID + str(exc)) from None",
        ]
    else:
        result = ["    return out"]
    source = "\n".join(
        [
            "def load(v):",
            "    if v.__class__ is not dict:",
            "        raise Invalid(EXPECTED + describe(v))",
            "    out = {}",
            "    f = None",
            "    try:",
            *(body or ["        pass"]),
            "    except Invalid as exc:",
            "        exc.path.append(f)",
            "        raise",
            *result,
            "",
        ]
    )
    exec(source, namespace)
    loader: Loader = namespace["load"]
    return loader


def dataclass_dumper(cls: type, fields: list[tuple[str, Dumper | None]]) -> Dumper:
    """``{"a": obj.a, "b": D1(obj.b)}`` compiled for ``cls`` (other values are left to ujson's hook)."""
    namespace: dict[str, Any] = {"cls": cls}
    items = []
    for i, (name, dump) in enumerate(fields):
        access = f"o.{name}" if name.isidentifier() else f"getattr(o, {name!r})"
        if dump is None:
            items.append(f"{name!r}: {access}")
        else:
            namespace[f"D{i}"] = dump
            items.append(f"{name!r}: D{i}({access})")
    source = (
        f"def dump(o):\n    if o.__class__ is not cls:\n        return o\n    return {{{', '.join(items)}}}\n"
    )
    exec(source, namespace)
    dumper: Dumper = namespace["dump"]
    return dumper


def typeddict_dumper(keys: list[tuple[str, Dumper]]) -> Dumper | None:
    """A TypedDict's dumper: a copy of the dict with the keys that need it dumped (``None``: none do)."""
    if not keys:
        return None

    def dump(v: Any) -> Any:
        if type(v) is not dict:
            return v
        out = dict(v)
        for key, d in keys:
            if key in out:
                out[key] = d(out[key])
        return out

    return dump
