"""HPACK (RFC 7541) for the HTTP/2 server: a full decoder and a stateless response encoder.

Decoding is the hot part: every request carries a few literal, Huffman-coded header values that
are new each time (``x-restate-invocation-id``, ``traceparent``, ...). The Huffman decoder walks
a byte-at-a-time state table (one lookup per input octet) built once, on first use, from the
canonical code lengths of RFC 7541 Appendix B.

The decoder hands out ``str`` names (lower-cased) and values (UTF-8, Latin-1 when that fails)
and keeps them in its dynamic table in that form, so a header the peer indexed costs nothing to
decode again. Entry sizes are computed from the octet lengths, as the RFC requires.

Bounds: every decoded field counts toward ``max_header_list_size`` as name + value + 32 octets,
one-octet references to the static table included (so a block cannot inflate 42-fold for free);
integers stop at 2^28; the cache of decoded Huffman literals (values sent again and again
without indexing, like ``:path``) holds at most :data:`CACHE_BYTES` per connection, literals of
up to 1 KiB, and only values of header lists that passed the size check.

The encoder never touches a dynamic table: every header is a static-table reference (full match)
or a literal without indexing (static name reference when there is one), never Huffman-coded.
So an encoded block depends only on the header list and can be cached and shared by all
connections. The one piece of connection state, a pending dynamic table size update after the
peer lowered ``SETTINGS_HEADER_TABLE_SIZE``, is the caller's business (see
:data:`TABLE_SIZE_ZERO`).
"""

from __future__ import annotations

from array import array

__all__ = [
    "CACHE_BYTES",
    "STATIC_TABLE",
    "TABLE_SIZE_ZERO",
    "Decoder",
    "HPACKDecodingError",
    "HeaderListTooLargeError",
    "encode_headers",
    "huffman_decode",
    "huffman_encode",
]


class HPACKDecodingError(Exception):
    """The header block is not valid HPACK (a connection error of type COMPRESSION_ERROR)."""


class HeaderListTooLargeError(HPACKDecodingError):
    """The decoded header list exceeds the decoder's ``max_header_list_size``."""


# --------------------------------------------------------------------------- static table

STATIC_TABLE: tuple[tuple[str, str], ...] = (
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
)
_STATIC_COUNT = len(STATIC_TABLE)  # 61
# the static table padded so that index i (1-based, as on the wire) is _STATIC[i]
_STATIC: tuple[tuple[str, str], ...] = (("", ""), *STATIC_TABLE)

DEFAULT_TABLE_SIZE = 4096
DEFAULT_MAX_HEADER_LIST_SIZE = 64 * 1024
_ENTRY_OVERHEAD = 32
# RFC 7541 §4.1 size of every static entry (name + value + 32), counted toward the header list
_STATIC_SIZES: tuple[int, ...] = (0, *(len(n) + len(v) + _ENTRY_OVERHEAD for n, v in STATIC_TABLE))
CACHE_BYTES = 16 * 1024
"""Per-connection budget of the cache of decoded Huffman literals (keys + values, in octets)."""
_CACHE_ENTRY_MAX = 1024  # longer literals are decoded every time, never cached

# --------------------------------------------------------------------------- Huffman code

# RFC 7541 Appendix B is a canonical Huffman code: the code of every symbol follows from the
# code lengths alone (codes are assigned in order of (length, symbol)). Lengths of symbols
# 0..256 (256 = EOS), one base-36 digit each.
_CODE_LENGTHS = (
    "DNSSSSSSSOUSSUSSSSSSSSUSSSSSSSSS6AACD68BAA8B8666555666666678F6CAD67777777777777777777777878DJ"
    "DE6F56565666577666567655677777FBEDSKMKKMMMNMNNNNNONOOMNONNNNLMNMNNOMLKMMNNLNMMOLMNNLLMLNMNNKMM"
    "MNMMNQQKJMNMPQQQRRQOPJLQRRQROLLQQSRRRKOKLMLLNMMPPOOQNQRQQRRRRRSRRRRRQU"
)
_EOS = 256


def _huffman_codes() -> list[tuple[int, int]]:
    """``(code, length)`` of symbols 0..256."""
    lengths = [int(c, 36) for c in _CODE_LENGTHS]
    codes = [(0, 0)] * len(lengths)
    code = 0
    previous = 0
    for symbol in sorted(range(len(lengths)), key=lambda s: (lengths[s], s)):
        code <<= lengths[symbol] - previous
        previous = lengths[symbol]
        codes[symbol] = (code, previous)
        code += 1
    return codes


_CODES = _huffman_codes()

# The decoding automaton: a state is an internal node of the code tree (the root is 0). The
# table, indexed by ``state * 256 + octet``, packs the state after that octet (pre-multiplied by
# 256, in the low 17 bits) and the index in ``_outputs`` of the symbols completed on the way
# (none, one or two). Decoding EOS leads to the failure state, which never leaves itself.
# Built on first use (~25 ms). Compact on purpose (a 257 KiB array, ~1 MB in all): between two
# requests the rest of the process evicts it from the CPU caches, and a table of 65,792 tuples
# (7 MB) decodes slower from memory than this one does.
_table: array[int] | None = None
_outputs: list[bytes] = []
_accepting: frozenset[int] = frozenset()
_FAIL = 256 * 256  # the failure state, pre-multiplied (there are 256 internal nodes)


def _build_table() -> array[int]:
    global _table, _outputs, _accepting
    # the code tree: children[node] = [zero, one]; an int >= 0 is an internal node, ~symbol a leaf
    children: list[list[int | None]] = [[None, None]]
    for symbol, (code, length) in enumerate(_CODES):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            child = children[node][bit]
            if child is None:
                children.append([None, None])
                child = len(children) - 1
                children[node][bit] = child
            node = child
        children[node][code & 1] = ~symbol
    assert len(children) == 256
    tree: list[list[int]] = [[c if c is not None else 0 for c in pair] for pair in children]

    # four bits at a time first, then octets as two nibbles
    nibbles: list[tuple[int, bytes, bool]] = []
    for state in range(256):
        for nibble in range(16):
            node = state
            emitted = bytearray()
            failed = False
            for shift in (3, 2, 1, 0):
                child = tree[node][(nibble >> shift) & 1]
                if child < 0:
                    if ~child == _EOS:
                        failed = True
                    else:
                        emitted.append(~child)
                    child = 0
                node = child
            nibbles.append((node, bytes(emitted), failed))
    outputs: list[bytes] = [b""]
    index: dict[bytes, int] = {b"": 0}
    table = array("I")  # 32 bits: up to 2**15 outputs, 17 bits of state
    for state in range(256):
        for octet in range(256):
            middle, first, failed1 = nibbles[state * 16 + (octet >> 4)]
            end, second, failed2 = nibbles[middle * 16 + (octet & 15)]
            if failed1 or failed2:
                table.append(_FAIL)
                continue
            out = first + second
            position = index.get(out)
            if position is None:
                position = index[out] = len(outputs)
                outputs.append(out)
            table.append(position << 17 | end * 256)
    table.extend([_FAIL] * 256)

    # padding: fewer than 8 bits, all ones (the most significant bits of EOS)
    accepting = {0}
    node = 0
    for _ in range(7):
        node = tree[node][1]
        accepting.add(node * 256)
    _accepting = frozenset(accepting)
    _outputs = outputs
    _table = table
    return table


def huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman-coded string literal; raises :class:`HPACKDecodingError` if invalid."""
    table = _table or _build_table()
    outputs = _outputs
    state = 0
    decoded = bytearray()
    for octet in data:
        entry = table[state + octet]
        state = entry & 0x1FFFF
        decoded += outputs[entry >> 17]
    if state not in _accepting:
        if state == _FAIL:
            raise HPACKDecodingError("Huffman-coded string contains EOS")
        raise HPACKDecodingError("invalid padding in Huffman-coded string")
    return bytes(decoded)


_CODE_BITS = [format(code, f"0{length}b") for code, length in _CODES]


def huffman_encode(data: bytes) -> bytes:
    """Huffman-code ``data`` (used by the tests; the server sends plain literals)."""
    bits = "".join([_CODE_BITS[octet] for octet in data])
    bits += "1" * (-len(bits) % 8)  # padding: the most significant bits of EOS
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


# --------------------------------------------------------------------------- decoder


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class Decoder:
    """Decodes header blocks of one connection (the dynamic table spans its blocks).

    ``max_table_size`` is the SETTINGS_HEADER_TABLE_SIZE we advertise (the ceiling for the
    peer's dynamic table size updates).
    """

    __slots__ = (
        "_cache",
        "_cache_bytes",
        "_entries",
        "_size",
        "max_header_list_size",
        "max_table_size",
        "table_size",
    )

    def __init__(
        self,
        max_table_size: int = DEFAULT_TABLE_SIZE,
        max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE,
    ) -> None:
        self.max_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        self.table_size = max_table_size  # the current maximum, as set by the peer
        # newest last: ((name, value), size)
        self._entries: list[tuple[tuple[str, str], int]] = []
        self._size = 0
        # Huffman-coded values of literals without indexing -> (text, octets), at most
        # CACHE_BYTES in all, filled only with values of header lists that passed the size check
        self._cache: dict[bytes, tuple[str, int]] = {}
        self._cache_bytes = 0

    @property
    def dynamic_table(self) -> list[tuple[str, str]]:
        """The dynamic table, newest entry first (index 62 on the wire)."""
        return [header for header, _ in reversed(self._entries)]

    @property
    def dynamic_table_size(self) -> int:
        return self._size

    def _add(self, name: str, value: str, size: int) -> None:
        entries = self._entries
        self._size += size
        limit = self.table_size
        if self._size > limit:
            if size > limit:  # an entry larger than the table empties it and is not added
                entries.clear()
                self._size = 0
                return
            entries.append(((name, value), size))
            evict = 0
            while self._size > limit:
                self._size -= entries[evict][1]
                evict += 1
            del entries[:evict]
            return
        entries.append(((name, value), size))

    def _resize(self, size: int) -> None:
        if size > self.max_table_size:
            raise HPACKDecodingError(
                f"dynamic table size update to {size} exceeds the limit {self.max_table_size}"
            )
        self.table_size = size
        entries = self._entries
        evict = 0
        while self._size > size:
            self._size -= entries[evict][1]
            evict += 1
        del entries[:evict]

    def decode(self, data: bytes) -> list[tuple[str, str]]:
        """Decode one complete header block into ``(name, value)`` pairs, in order."""
        headers: list[tuple[str, str]] = []
        append = headers.append
        entries = self._entries
        end = len(data)
        pos = 0
        list_size = 0
        limit = self.max_header_list_size
        to_cache: list[tuple[bytes, str, int]] | None = None
        try:
            while pos < end:
                first = data[pos]
                pos += 1
                if first & 0x80:  # indexed header field
                    index = first & 0x7F
                    if 0 < index <= _STATIC_COUNT:
                        append(_STATIC[index])
                        list_size += _STATIC_SIZES[index]  # one octet in, 33+ octets counted
                        if list_size > limit:
                            raise HeaderListTooLargeError(f"header list larger than {limit} octets")
                        continue
                    if index == 0x7F:
                        index, pos = _varint(data, pos, index)
                    position = index - _STATIC_COUNT
                    if position <= 0 or position > len(entries):
                        raise HPACKDecodingError(f"header index {index} is not in the tables")
                    header, size = entries[-position]
                    append(header)
                    list_size += size
                    if list_size > limit:
                        raise HeaderListTooLargeError(f"header list larger than {limit} octets")
                    continue
                if first & 0x40:  # literal with incremental indexing
                    index = first & 0x3F
                    if index == 0x3F:
                        index, pos = _varint(data, pos, index)
                    indexing = True
                    cache = None  # the peer refers to it by index next time
                elif first & 0x20:  # dynamic table size update
                    if headers:
                        raise HPACKDecodingError("dynamic table size update after a header field")
                    size = first & 0x1F
                    if size == 0x1F:
                        size, pos = _varint(data, pos, size)
                    self._resize(size)
                    continue
                else:  # literal without indexing (0000) or never indexed (0001)
                    index = first & 0x0F
                    if index == 0x0F:
                        index, pos = _varint(data, pos, index)
                    indexing = False
                    # values sent again and again without indexing (:path): decode them once;
                    # never-indexed (sensitive) values are not kept
                    cache = None if first & 0x10 else self._cache
                if index:
                    if index <= _STATIC_COUNT:
                        name = _STATIC[index][0]
                    else:
                        position = index - _STATIC_COUNT
                        if position > len(entries):
                            raise HPACKDecodingError(f"header index {index} is beyond the dynamic table")
                        name = entries[-position][0][0]
                    name_size = len(name)  # table names are Latin-1: chars == octets
                else:
                    raw, pos = _string(data, pos)
                    name_size = len(raw)
                    name = raw.decode("latin-1").lower()
                # the value string
                length = data[pos]
                pos += 1
                huffman = length & 0x80
                length &= 0x7F
                if length == 0x7F:
                    length, pos = _varint(data, pos, length)
                stop = pos + length
                if stop > end:
                    raise HPACKDecodingError("string literal runs past the end of the header block")
                raw = data[pos:stop]
                pos = stop
                if not huffman:
                    value = _text(raw)
                    octets = length
                elif cache is not None and raw in cache:
                    value, octets = cache[raw]
                else:
                    decoded = huffman_decode(raw)
                    value = _text(decoded)
                    octets = len(decoded)
                    if cache is not None and length <= _CACHE_ENTRY_MAX:
                        if to_cache is None:
                            to_cache = []
                        to_cache.append((raw, value, octets))
                size = name_size + octets + _ENTRY_OVERHEAD
                list_size += size
                if list_size > limit:
                    raise HeaderListTooLargeError(f"header list larger than {limit} octets")
                if indexing:
                    self._add(name, value, size)
                append((name, value))
        except IndexError:
            raise HPACKDecodingError("truncated header block") from None
        if to_cache is not None:  # the whole list passed the size check
            self._remember(to_cache)
        return headers

    def _remember(self, literals: list[tuple[bytes, str, int]]) -> None:
        cache = self._cache
        for raw, value, octets in literals:
            cost = len(raw) + octets
            if self._cache_bytes + cost > CACHE_BYTES:
                cache.clear()
                self._cache_bytes = 0
            cache[raw] = (value, octets)
            self._cache_bytes += cost


def _varint(data: bytes, pos: int, value: int) -> tuple[int, int]:
    """Continue an integer whose prefix was all ones (RFC 7541 §5.1)."""
    shift = 0
    while True:
        octet = data[pos]
        pos += 1
        value += (octet & 0x7F) << shift
        if not octet & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise HPACKDecodingError("integer too large")


def _string(data: bytes, pos: int) -> tuple[bytes, int]:
    first = data[pos]
    length = first & 0x7F
    pos += 1
    if length == 0x7F:
        length, pos = _varint(data, pos, length)
    end = pos + length
    if end > len(data):
        raise HPACKDecodingError("string literal runs past the end of the header block")
    raw = data[pos:end]
    if first & 0x80:
        raw = huffman_decode(raw)
    return raw, end


# --------------------------------------------------------------------------- encoder

# A dynamic table size update to 0 (RFC 7541 §6.3), to put in front of the next header block
# after the peer lowered SETTINGS_HEADER_TABLE_SIZE: always valid, since we never index.
TABLE_SIZE_ZERO = b"\x20"

_STATIC_FULL: dict[tuple[str, str], int] = {}
_STATIC_NAME: dict[str, int] = {}
for _index, (_name, _value) in enumerate(STATIC_TABLE, 1):
    _STATIC_NAME.setdefault(_name, _index)
    if _value:
        _STATIC_FULL.setdefault((_name, _value), _index)
del _index, _name, _value  # pyright: ignore[reportPossiblyUnboundVariable]


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_headers(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> bytes:
    """Encode a header list without dynamic table state and without Huffman coding.

    Names must already be lower case. The result depends only on ``headers``.
    """
    out = bytearray()
    for name, value in headers:
        index = _STATIC_FULL.get((name, value))
        if index is not None:
            out += _integer(index, 7, 0x80)
            continue
        index = _STATIC_NAME.get(name)
        if index is not None:
            out += _integer(index, 4, 0x00)
        else:
            raw_name = name.encode("latin-1")
            out.append(0x00)
            out += _integer(len(raw_name), 7, 0x00)
            out += raw_name
        raw_value = value.encode("utf-8")
        out += _integer(len(raw_value), 7, 0x00)
        out += raw_value
    return bytes(out)
