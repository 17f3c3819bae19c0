"""restate_sync.typed: serdes and JSON Schemas derived from Python types."""

import datetime as dt
import decimal
import enum
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Literal, NewType, NotRequired, Optional, TypedDict, TypeVar

import pytest
import ujson

from restate_sync.serde import BytesSerde, JsonSerde, SerdeError
from restate_sync.typed import (
    EmptySerde,
    MsgspecSerde,
    PydanticSerde,
    RawBytesSerde,
    TypedJsonSerde,
    is_empty_type,
    schema_for,
    serde_for,
)

pydantic = pytest.importorskip("pydantic")
msgspec = pytest.importorskip("msgspec")


def round_trip(tp, value):
    serde = serde_for(tp)
    data = serde.serialize(value)
    assert isinstance(data, bytes)
    return serde.deserialize(data)


def decode_error(tp, payload) -> str:
    data = payload if isinstance(payload, bytes) else ujson.dumps(payload).encode()
    with pytest.raises(SerdeError) as info:
        serde_for(tp).deserialize(data)
    assert isinstance(info.value, ValueError)
    return str(info.value)


# --------------------------------------------------------------------------------------------
# primitives and generic aliases
# --------------------------------------------------------------------------------------------

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULL = {"type": "null"}


@pytest.mark.parametrize(
    ("tp", "schema"),
    [
        (str, STRING),
        (int, INTEGER),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (Optional[int], {"anyOf": [INTEGER, NULL]}),  # noqa: UP045
        (int | None, {"anyOf": [INTEGER, NULL]}),
        (int | str, {"anyOf": [INTEGER, STRING]}),
        (list[str], {"type": "array", "items": STRING}),
        (list, {"type": "array"}),
        (dict[str, int], {"type": "object", "additionalProperties": INTEGER}),
        (
            dict[str, list[int | None]],
            {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"anyOf": [INTEGER, NULL]}},
            },
        ),
        (
            dict[int, str],
            {"type": "object", "additionalProperties": STRING, "propertyNames": {"pattern": "^-?[0-9]+$"}},
        ),
        (tuple[int, str], {"type": "array", "prefixItems": [INTEGER, STRING], "minItems": 2, "maxItems": 2}),
        (tuple[int, ...], {"type": "array", "items": INTEGER}),
        (set[str], {"type": "array", "items": STRING, "uniqueItems": True}),
        (dt.datetime, {"type": "string", "format": "date-time"}),
        (dt.date, {"type": "string", "format": "date"}),
        (uuid.UUID, {"type": "string", "format": "uuid"}),
        (NewType("UserId", str), STRING),
        (Annotated[int, "doc"], INTEGER),
        (Any, None),
        (object, None),
    ],
)
def test_primitive_and_generic_schemas(tp, schema):
    serde = serde_for(tp)
    assert isinstance(serde, TypedJsonSerde)
    assert isinstance(serde, JsonSerde)
    assert serde.content_type == "application/json"
    assert serde.json_schema() == schema
    assert schema_for(tp) == schema


@pytest.mark.parametrize(
    ("tp", "value"),
    [
        (str, "héllo/wörld"),
        (int, -42),
        (float, 2.5),
        (bool, True),
        (int | None, None),
        (int | None, 7),
        (list[str], ["a", "b"]),
        (dict[str, int], {"a": 1, "b": 2}),
        (dict[int, str], {1: "one", -2: "minus two"}),
        (tuple[int, str], (1, "x")),
        (set[str], {"a", "b"}),
        (dt.datetime, dt.datetime(2024, 5, 17, 12, 30, tzinfo=dt.UTC)),
        (dt.date, dt.date(2024, 5, 17)),
        (uuid.UUID, uuid.UUID("12345678-1234-5678-1234-567812345678")),
        (decimal.Decimal, decimal.Decimal("0.1000000000000000055511151231257827")),
        (Any, {"anything": [1, "two", None]}),
    ],
)
def test_primitive_round_trips(tp, value):
    result = round_trip(tp, value)
    assert result == value
    assert type(result) is type(value)


def test_wire_format_is_plain_json():
    assert serde_for(str).serialize("a/b") == b'"a/b"'
    assert serde_for(dict[str, int]).serialize({"a": 1}) == b'{"a":1}'
    assert serde_for(dt.date).serialize(dt.date(2024, 1, 2)) == b'"2024-01-02"'
    assert serde_for(decimal.Decimal).serialize(decimal.Decimal("1.10")) == b'"1.10"'
    assert serde_for(decimal.Decimal).deserialize(b"1.5") == decimal.Decimal("1.5")


def test_int_rejects_a_string_with_a_clear_message():
    assert decode_error(int, "abc") == 'expected int, got str "abc"'
    assert decode_error(int, 2.5) == "expected int, got float 2.5"
    assert decode_error(int, True) == "expected int, got bool true"
    assert decode_error(int, b"") == "expected int, got null"
    assert serde_for(int).deserialize(b"2.0") == 2


def test_float_accepts_ints_bool_does_not():
    result = serde_for(float).deserialize(b"3")
    assert result == 3.0 and type(result) is float
    assert decode_error(float, "3") == 'expected float, got str "3"'
    assert decode_error(bool, 1) == "expected bool, got int 1"


def test_container_errors_name_the_position():
    assert decode_error(list[int], [1, 2, "x"]) == '[2]: expected int, got str "x"'
    assert decode_error(dict[str, int], {"a": 1, "b": None}) == "b: expected int, got null"
    assert decode_error(dict[str, int], {"a b": "1"}) == '["a b"]: expected int, got str "1"'
    assert decode_error(dict[int, str], {"x": "1"}) == 'x: invalid key: expected int, got str "x"'
    assert decode_error(list[int], {"a": 1}) == "expected list, got dict"
    assert decode_error(tuple[int, str], [1]) == "expected array of 2 items, got array of 1 items"
    assert decode_error(int | str, None) == "expected int | str, got null"
    assert decode_error(dict[str, list[int]], {"k": [1, "2"]}) == 'k[1]: expected int, got str "2"'


def test_invalid_json_is_a_serde_error():
    assert decode_error(int, b"{nope").startswith("invalid JSON")


def test_any_passes_everything_through():
    serde = serde_for(Any)
    assert serde.deserialize(b"") is None
    assert serde.deserialize(b'{"a":[1]}') == {"a": [1]}
    assert serde.json_schema() is None


def test_unresolved_string_annotation_is_a_type_error():
    with pytest.raises(TypeError, match="forward reference"):
        serde_for("Person")


# --------------------------------------------------------------------------------------------
# enums and literals
# --------------------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    FAST = "fast"
    SAFE = "safe"


def test_enum_schema_round_trip_and_error():
    assert schema_for(Color) == {"title": "Color", "enum": ["red", "green"], "type": "string"}
    assert schema_for(Priority) == {"title": "Priority", "enum": [1, 2], "type": "integer"}
    assert serde_for(Color).serialize(Color.RED) == b'"red"'
    assert round_trip(Color, Color.GREEN) is Color.GREEN
    assert round_trip(Priority, Priority.HIGH) is Priority.HIGH
    assert decode_error(Color, "blue") == 'expected Color (one of "red", "green"), got str "blue"'
    assert decode_error(Priority, True).startswith("expected Priority")


def test_literal_schema_round_trip_and_error():
    tp = Literal["asc", "desc"]
    assert schema_for(tp) == {"enum": ["asc", "desc"], "type": "string"}
    assert schema_for(Literal[1, "x"]) == {"enum": [1, "x"]}
    assert round_trip(tp, "desc") == "desc"
    assert decode_error(tp, "up") == 'expected one of "asc", "desc", got str "up"'
    assert decode_error(Literal[1], True) == "expected one of 1, got bool true"


def test_dict_keys_can_be_str_enums_but_not_plain_enums():
    assert schema_for(dict[Mode, int]) == {
        "type": "object",
        "additionalProperties": INTEGER,
        "propertyNames": {"title": "Mode", "enum": ["fast", "safe"], "type": "string"},
    }
    assert round_trip(dict[Mode, int], {Mode.FAST: 1}) == {Mode.FAST: 1}
    with pytest.raises(TypeError, match="dict keys"):
        serde_for(dict[Color, int])


# --------------------------------------------------------------------------------------------
# dataclasses
# --------------------------------------------------------------------------------------------


@dataclass
class Address:
    street: str
    zip: str | None = None


@dataclass
class Person:
    """Somebody we know."""

    name: str
    age: int
    address: Address
    tags: list[str] = field(default_factory=list)
    nickname: Optional[str] = None  # noqa: UP045
    color: Color = Color.RED
    score: float = field(default=0.0, metadata={"description": "how much we like them"})


ADDRESS_SCHEMA = {
    "title": "Address",
    "type": "object",
    "properties": {"street": STRING, "zip": {"anyOf": [STRING, NULL], "default": None}},
    "required": ["street"],
}

PERSON_SCHEMA = {
    "title": "Person",
    "description": "Somebody we know.",
    "type": "object",
    "properties": {
        "name": STRING,
        "age": INTEGER,
        "address": {"$ref": "#/$defs/Address"},
        "tags": {"type": "array", "items": STRING},
        "nickname": {"anyOf": [STRING, NULL], "default": None},
        "color": {"title": "Color", "enum": ["red", "green"], "type": "string", "default": "red"},
        "score": {"type": "number", "default": 0.0, "description": "how much we like them"},
    },
    "required": ["name", "age", "address"],
    "$defs": {"Address": ADDRESS_SCHEMA},
}

ADA = Person("Ada", 36, Address("1 Loop St"), tags=["math"], nickname=None, color=Color.GREEN, score=1.5)


def test_dataclass_schema():
    assert schema_for(Person) == PERSON_SCHEMA
    assert schema_for(Address) == ADDRESS_SCHEMA  # no description: the generated __doc__ is ignored


def test_dataclass_round_trip():
    serde = serde_for(Person)
    data = serde.serialize(ADA)
    assert ujson.loads(data) == {
        "name": "Ada",
        "age": 36,
        "address": {"street": "1 Loop St", "zip": None},
        "tags": ["math"],
        "nickname": None,
        "color": "green",
        "score": 1.5,
    }
    assert serde.deserialize(data) == ADA


def test_dataclass_defaults_apply_to_missing_fields():
    person = serde_for(Person).deserialize(b'{"name":"Bo","age":3,"address":{"street":"x"},"extra":1}')
    assert person == Person("Bo", 3, Address("x"))


def test_dataclass_errors_name_the_field():
    ok = {"name": "Bo", "age": 3, "address": {"street": "x"}}
    assert decode_error(Person, {**ok, "age": "x"}) == 'age: expected int, got str "x"'
    assert decode_error(Person, {**ok, "address": {}}) == "address.street: missing required field"
    assert decode_error(Person, {**ok, "address": {"street": 1}}) == "address.street: expected str, got int 1"
    assert decode_error(Person, {**ok, "tags": ["a", None]}) == "tags[1]: expected str, got null"
    assert decode_error(Person, {**ok, "color": "blue"}).startswith('color: expected Color (one of "red"')
    assert decode_error(Person, [1]) == "expected Person object, got list"
    assert decode_error(Person, b"") == "expected Person object, got null"


@dataclass
class Item:
    name: str
    qty: int = 1


@dataclass
class Order:
    items: list[Item]
    by_sku: dict[str, Item]
    gift: Item | None = None


ITEM_SCHEMA = {
    "title": "Item",
    "type": "object",
    "properties": {"name": STRING, "qty": {"type": "integer", "default": 1}},
    "required": ["name"],
}


def test_list_and_dict_of_structs():
    assert schema_for(Order) == {
        "title": "Order",
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
            "by_sku": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Item"}},
            "gift": {"anyOf": [{"$ref": "#/$defs/Item"}, NULL], "default": None},
        },
        "required": ["items", "by_sku"],
        "$defs": {"Item": ITEM_SCHEMA},
    }
    order = Order([Item("a"), Item("b", 2)], {"x": Item("x", 3)}, gift=Item("g"))
    assert round_trip(Order, order) == order
    payload = {"items": [{"name": "a"}, {"name": "b"}, {"name": 5}], "by_sku": {}}
    assert decode_error(Order, payload) == "items[2].name: expected str, got int 5"
    payload = {"items": [], "by_sku": {"abc": {"name": "n", "qty": "many"}}}
    assert decode_error(Order, payload) == 'by_sku.abc.qty: expected int, got str "many"'


def test_top_level_list_of_structs():
    assert schema_for(list[Item]) == {
        "type": "array",
        "items": {"$ref": "#/$defs/Item"},
        "$defs": {"Item": ITEM_SCHEMA},
    }
    assert round_trip(list[Item], [Item("a"), Item("b", 2)]) == [Item("a"), Item("b", 2)]
    assert decode_error(list[Item], [{"name": "a"}, {}]) == "[1].name: missing required field"


def test_optional_struct_at_the_top():
    assert schema_for(Item | None) == {
        "anyOf": [{"$ref": "#/$defs/Item"}, NULL],
        "$defs": {"Item": ITEM_SCHEMA},
    }
    assert serde_for(Item | None).deserialize(b"null") is None
    assert round_trip(Item | None, Item("z")) == Item("z")


@dataclass
class TreeNode:
    value: int
    children: "list[TreeNode]" = field(default_factory=list)


def test_recursive_dataclass_uses_a_ref_at_the_top():
    assert schema_for(TreeNode) == {
        "$ref": "#/$defs/TreeNode",
        "$defs": {
            "TreeNode": {
                "title": "TreeNode",
                "type": "object",
                "properties": {
                    "value": INTEGER,
                    "children": {"type": "array", "items": {"$ref": "#/$defs/TreeNode"}},
                },
                "required": ["value"],
            }
        },
    }
    tree = TreeNode(1, [TreeNode(2), TreeNode(3, [TreeNode(4)])])
    assert round_trip(TreeNode, tree) == tree
    assert decode_error(TreeNode, {"value": 1, "children": [{"value": 2, "children": [{"value": "x"}]}]}) == (
        'children[0].children[0].value: expected int, got str "x"'
    )


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    next: str | None = None


def test_generic_dataclass():
    schema = schema_for(Page[Item])
    assert schema["title"] == "Page[Item]"
    assert schema["properties"]["items"] == {"type": "array", "items": {"$ref": "#/$defs/Item"}}
    assert schema["$defs"] == {"Item": ITEM_SCHEMA}
    page = Page([Item("a")], next="p2")
    assert round_trip(Page[Item], page) == page
    assert decode_error(Page[int], {"items": ["1"]}) == 'items[0]: expected int, got str "1"'


@dataclass
class Positive:
    n: int

    def __post_init__(self):
        if self.n <= 0:
            raise ValueError("n must be positive")


def test_constructor_errors_become_serde_errors():
    assert decode_error(list[Positive], [{"n": 1}, {"n": -1}]) == "[1]: invalid Positive: n must be positive"


@dataclass
class Stamped:
    when: dt.datetime
    id: uuid.UUID
    labels: frozenset[str] = frozenset()


def test_dataclass_with_datetime_uuid_and_sets():
    value = Stamped(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), uuid.uuid4(), frozenset({"a"}))
    assert round_trip(Stamped, value) == value
    assert decode_error(Stamped, {"when": "yesterday", "id": str(uuid.uuid4())}) == (
        'when: expected ISO 8601 date-time string, got str "yesterday"'
    )


# --------------------------------------------------------------------------------------------
# TypedDict
# --------------------------------------------------------------------------------------------


class Movie(TypedDict):
    title: str
    year: int
    rating: NotRequired[float]
    cast: NotRequired[list[Address]]


MOVIE_SCHEMA = {
    "title": "Movie",
    "type": "object",
    "properties": {
        "title": STRING,
        "year": INTEGER,
        "rating": {"type": "number"},
        "cast": {"type": "array", "items": {"$ref": "#/$defs/Address"}},
    },
    "required": ["title", "year"],
    "$defs": {"Address": ADDRESS_SCHEMA},
}


def test_typeddict_schema_round_trip_and_errors():
    assert schema_for(Movie) == MOVIE_SCHEMA
    movie: Movie = {"title": "Heat", "year": 1995}
    assert round_trip(Movie, movie) == movie
    full: Movie = {"title": "Heat", "year": 1995, "rating": 8.3, "cast": [Address("x", "1")]}
    assert round_trip(Movie, full) == full
    assert serde_for(Movie).deserialize(b'{"title":"a","year":1,"unknown":true}') == {"title": "a", "year": 1}
    assert decode_error(Movie, {"title": "a"}) == "year: missing required key"
    assert (
        decode_error(Movie, {"title": "a", "year": 1, "rating": "high"})
        == 'rating: expected float, got str "high"'
    )
    assert (
        decode_error(Movie, {"title": "a", "year": 1, "cast": [{"zip": "1"}]})
        == "cast[0].street: missing required field"
    )


# --------------------------------------------------------------------------------------------
# pydantic and msgspec
# --------------------------------------------------------------------------------------------


class PydItem(pydantic.BaseModel):
    name: str
    qty: int = 1


class PydOrder(pydantic.BaseModel):
    """An order."""

    items: list[PydItem]
    note: str | None = None


def test_pydantic_model():
    serde = serde_for(PydOrder)
    assert isinstance(serde, PydanticSerde)
    assert serde.content_type == "application/json"
    assert serde.json_schema() == PydOrder.model_json_schema()
    assert serde.json_schema()["$defs"]["PydItem"]["properties"]["name"] == {
        "title": "Name",
        "type": "string",
    }
    order = PydOrder(items=[PydItem(name="a"), PydItem(name="b", qty=2)])
    assert ujson.loads(serde.serialize(order)) == {
        "items": [{"name": "a", "qty": 1}, {"name": "b", "qty": 2}],
        "note": None,
    }
    assert round_trip(PydOrder, order) == order
    message = decode_error(PydOrder, {"items": [{"name": "a"}, {"name": 5}]})
    assert message == "items[1].name: Input should be a valid string"
    assert decode_error(PydOrder, b"{nope").startswith("Invalid JSON")


def test_pydantic_dataclass():
    @pydantic.dataclasses.dataclass
    class Point:
        x: int
        y: int

    serde = serde_for(Point)
    assert isinstance(serde, PydanticSerde)
    assert round_trip(Point, Point(1, 2)) == Point(1, 2)
    assert decode_error(Point, {"x": 1, "y": "no"}).startswith("y: Input should be a valid integer")


@dataclass
class Wrapper:
    order: PydOrder
    count: int = 0


def test_pydantic_model_inside_a_dataclass():
    schema = schema_for(Wrapper)
    assert schema["properties"]["order"] == {"$ref": "#/$defs/PydOrder"}
    assert schema["$defs"]["PydOrder"]["title"] == "PydOrder"
    assert schema["$defs"]["PydItem"] == PydItem.model_json_schema()
    wrapper = Wrapper(PydOrder(items=[PydItem(name="a")]), 2)
    assert round_trip(Wrapper, wrapper) == wrapper
    assert (
        decode_error(Wrapper, {"order": {"items": [{"name": []}]}})
        == "order.items[0].name: Input should be a valid string"
    )


class MsgItem(msgspec.Struct):
    name: str
    qty: int = 1


class MsgOrder(msgspec.Struct):
    items: list[MsgItem]
    note: str | None = None


def test_msgspec_struct():
    serde = serde_for(MsgOrder)
    assert isinstance(serde, MsgspecSerde)
    assert serde.json_schema() == msgspec.json.schema(MsgOrder)
    assert serde.json_schema()["$defs"]["MsgItem"] == {
        "title": "MsgItem",
        "type": "object",
        "properties": {"name": STRING, "qty": {"type": "integer", "default": 1}},
        "required": ["name"],
    }
    order = MsgOrder([MsgItem("a"), MsgItem("b", 2)], note="n")
    assert round_trip(MsgOrder, order) == order
    assert (
        decode_error(MsgOrder, {"items": [{"name": "a"}, {"name": 5}]})
        == "items[1].name: Expected `str`, got `int`"
    )
    assert decode_error(MsgOrder, b"").startswith("invalid JSON")


def test_msgspec_struct_inside_generic_alias():
    schema = schema_for(list[MsgItem])
    assert schema == {
        "type": "array",
        "items": {"$ref": "#/$defs/MsgItem"},
        "$defs": {"MsgItem": msgspec.json.schema(MsgItem)["$defs"]["MsgItem"]},
    }
    assert round_trip(list[MsgItem], [MsgItem("a")]) == [MsgItem("a")]
    assert (
        decode_error(list[MsgItem], [{"name": "a"}, {"qty": 1}])
        == "[1]: Object missing required field `name`"
    )


# --------------------------------------------------------------------------------------------
# bytes, None, serde objects, json_schema() classes, fallback
# --------------------------------------------------------------------------------------------


def test_bytes_is_raw():
    serde = serde_for(bytes)
    assert isinstance(serde, RawBytesSerde)
    assert isinstance(serde, BytesSerde)
    assert serde.content_type == "application/octet-stream"
    assert serde.json_schema() is None
    assert serde.serialize(b"\x00\xff") == b"\x00\xff"
    assert serde.deserialize(b"\x00\xff") == b"\x00\xff"
    with pytest.raises(SerdeError):
        serde.serialize("text")


@pytest.mark.parametrize("tp", [None, type(None)])
def test_none_is_empty(tp):
    assert is_empty_type(tp)
    serde = serde_for(tp)
    assert isinstance(serde, EmptySerde)
    assert is_empty_type(serde)
    assert serde.serialize(None) == b""
    assert serde.deserialize(b"ignored body") is None
    assert serde.json_schema() is None
    assert isinstance(serde.content_type, str)


def test_non_empty_types_are_not_empty():
    for tp in (int, int | None, Any, bytes, Item):
        assert not is_empty_type(tp)


class UpperSerde:
    content_type = "text/plain"

    def serialize(self, obj):
        return obj.upper().encode()

    def deserialize(self, data):
        return data.decode().upper()


class StaticSerde:
    @staticmethod
    def serialize(obj):
        return repr(obj).encode()

    @staticmethod
    def deserialize(data):
        return data.decode()


def test_serde_objects_pass_through():
    custom = UpperSerde()
    assert serde_for(custom) is custom
    assert serde_for(StaticSerde) is StaticSerde
    assert serde_for(Annotated[str, custom]) is custom
    assert schema_for(custom) is None


def test_serde_class_instead_of_instance_is_a_type_error():
    with pytest.raises(TypeError, match=r"UpperSerde\(\)"):
        serde_for(UpperSerde)


class Geo:
    @classmethod
    def json_schema(cls):
        return {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}}


def test_class_with_json_schema():
    serde = serde_for(Geo)
    assert isinstance(serde, TypedJsonSerde)
    assert serde.json_schema() == Geo.json_schema()
    assert serde.deserialize(b'{"lat":1.5,"lon":2}') == {"lat": 1.5, "lon": 2}
    assert serde.serialize({"lat": 1}) == b'{"lat":1}'


class Opaque:
    pass


def test_anything_else_is_plain_json_without_schema():
    serde = serde_for(Opaque)
    assert isinstance(serde, JsonSerde)
    assert serde.json_schema() is None
    assert serde.deserialize(b'{"a":1}') == {"a": 1}
    assert serde.deserialize(b"") is None
    with pytest.raises(SerdeError, match="Opaque"):
        serde.serialize(Opaque())


def test_json_schema_returns_a_fresh_copy():
    serde = serde_for(Person)
    serde.json_schema()["properties"].clear()
    assert serde.json_schema() == PERSON_SCHEMA


def test_encoding_converts_nested_library_types_in_untyped_positions():
    value = {"p": ADA, "m": MsgItem("a"), "d": PydItem(name="b"), "s": {3}, "t": dt.time(1, 2)}
    assert ujson.loads(serde_for(dict[str, Any]).serialize(value)) == {
        "p": ujson.loads(serde_for(Person).serialize(ADA)),
        "m": {"name": "a", "qty": 1},
        "d": {"name": "b", "qty": 1},
        "s": [3],
        "t": "01:02:00",
    }


def test_import_does_not_import_pydantic_or_msgspec():
    code = (
        "import sys, restate_sync.typed\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'msgspec', 'pydantic_core'))\n"
        "assert not bad, bad\n"
        "from dataclasses import dataclass\n"
        "@dataclass\n"
        "class A:\n"
        "    x: int\n"
        "restate_sync.typed.serde_for(A).deserialize(b'{\"x\": 1}')\n"
        "restate_sync.typed.serde_for(list[A])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'msgspec', 'pydantic_core'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# more struct shapes
# --------------------------------------------------------------------------------------------


def test_union_of_structs_picks_the_matching_member():
    tp = Item | Address
    assert schema_for(tp) == {
        "anyOf": [{"$ref": "#/$defs/Item"}, {"$ref": "#/$defs/Address"}],
        "$defs": {"Item": ITEM_SCHEMA, "Address": ADDRESS_SCHEMA},
    }
    assert round_trip(tp, Address("s", "z")) == Address("s", "z")
    assert round_trip(tp, Item("n", 2)) == Item("n", 2)
    # only Address gets past the object check and fails deeper: its error is the one reported
    assert decode_error(Item | list[int], {"qty": 1}) == "name: missing required field"
    assert decode_error(tp, "x") == 'expected Item object | Address object, got str "x"'


Odd = TypedDict("Odd", {"a b": int, "class": str})


def test_typeddict_keys_need_not_be_identifiers():
    assert schema_for(Odd)["properties"] == {"a b": INTEGER, "class": STRING}
    assert round_trip(Odd, {"a b": 1, "class": "x"}) == {"a b": 1, "class": "x"}
    assert decode_error(Odd, {"a b": "1", "class": "x"}) == '["a b"]: expected int, got str "1"'


@dataclass
class WithComputed:
    width: int
    height: int
    area: int = field(init=False)

    def __post_init__(self):
        self.area = self.width * self.height


def test_init_false_fields_are_encoded_but_not_read_back():
    schema = schema_for(WithComputed)
    assert schema["properties"]["area"] == INTEGER
    assert schema["required"] == ["width", "height"]
    serde = serde_for(WithComputed)
    assert ujson.loads(serde.serialize(WithComputed(2, 3))) == {"width": 2, "height": 3, "area": 6}
    assert serde.deserialize(b'{"width":2,"height":3,"area":99}') == WithComputed(2, 3)


@dataclass
class SpecialItem(Item):
    color: Color = Color.RED


def test_subclass_and_dict_outputs_still_encode():
    serde = serde_for(list[Item])
    data = serde.serialize([SpecialItem("a", 2, Color.GREEN), {"name": "b", "qty": 1}])
    assert ujson.loads(data) == [{"name": "a", "qty": 2, "color": "green"}, {"name": "b", "qty": 1}]


OuterItem = Item


def test_same_name_different_classes_get_distinct_defs():
    @dataclass
    class Item:  # same name as the module-level Item
        other: bool

    @dataclass
    class Both:
        a: OuterItem
        b: Item

    schema = schema_for(Both)
    local = "tests.unit.test_typed.test_same_name_different_classes_get_distinct_defs._locals_.Item"
    assert schema["properties"] == {"a": {"$ref": "#/$defs/Item"}, "b": {"$ref": f"#/$defs/{local}"}}
    assert schema["$defs"]["Item"] == ITEM_SCHEMA
    assert schema["$defs"][local]["properties"] == {"other": {"type": "boolean"}}
    value = Both(OuterItem("x"), Item(True))
    assert round_trip(Both, value) == value


class PydB(pydantic.BaseModel):
    x: int


class PydA(pydantic.BaseModel):
    b: PydB


@dataclass
class BothPyd:
    a: PydA
    b: PydB


def test_pydantic_models_shared_between_fields_are_defined_once():
    schema = schema_for(BothPyd)
    assert schema["properties"] == {"a": {"$ref": "#/$defs/PydA"}, "b": {"$ref": "#/$defs/PydB"}}
    assert sorted(schema["$defs"]) == ["PydA", "PydB"]
    value = BothPyd(PydA(b=PydB(x=1)), PydB(x=2))
    assert round_trip(BothPyd, value) == value


def test_pydantic_serde_accepts_a_dict_for_a_model_output():
    serde = serde_for(PydItem)
    assert ujson.loads(serde.serialize({"name": "a"})) == {"name": "a", "qty": 1}
    with pytest.raises(SerdeError, match="cannot encode dict"):
        serde.serialize({"qty": "x"})


def test_unserializable_output_is_a_serde_error():
    with pytest.raises(SerdeError, match="cannot encode"):
        serde_for(Person).serialize(object())
