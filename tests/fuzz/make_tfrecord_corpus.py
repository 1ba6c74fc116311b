"""Writes the TFRecord regression seeds in tests/fuzz/corpus/ (hostile inputs that once
crashed or misled dlprep): tfrecord_framing/ (whole files, for RecordReader) and
example_decode/ and sequence_example_decode/ (one serialized tf.train.Example or
SequenceExample each, for ExampleDecoder and InferExampleSchema), and the fuzzers'
well-formed starting points (seed_*). Pure Python and deterministic: the seeds are committed, and this
says how each was made. Run: python tests/fuzz/make_tfrecord_corpus.py"""
import gzip
import struct
import zlib
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def masked_crc(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload):
    """One TFRecord record: length, masked CRC of it, data, masked CRC of the data."""
    header = struct.pack("<Q", len(payload))
    return (header + struct.pack("<I", masked_crc(header)) + payload +
            struct.pack("<I", masked_crc(payload)))


def header_only(length):
    """A record header that claims `length` data bytes, with a valid length CRC."""
    header = struct.pack("<Q", length)
    return header + struct.pack("<I", masked_crc(header))


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def ld(field, payload):
    """A length-delimited field."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def int64_list(*values):
    return ld(1, b"".join(varint(v & (2**64 - 1)) for v in values))  # packed


def float_list(*values):
    return ld(1, b"".join(struct.pack("<f", v) for v in values))  # packed


def bytes_list(*values):
    return b"".join(ld(1, v) for v in values)


def feature(kind, list_msg):
    return ld({"bytes": 1, "float": 2, "int64": 3}[kind], list_msg)


def entry(key, feature_msg):
    return ld(1, ld(1, key) + ld(2, feature_msg))


def example(*entries):
    return ld(1, b"".join(entries))


def good_example(i):
    return example(entry(b"id", feature("int64", int64_list(i))),
                   entry(b"name", feature("bytes", bytes_list(b"row-%d" % i))))


def damaged_gzip():
    """20 records, gzip-compressed, with one byte in the middle inverted so that inflate
    fails ("invalid distance code" and the like, not a CRC error) after 10 whole records."""
    records = [frame(good_example(i)) for i in range(20)]
    raw = b"".join(records)
    ten = len(b"".join(records[:10]))
    gz = gzip.compress(raw, mtime=0)
    for pos in range(len(gz) // 2, len(gz) - 8):
        damaged = bytearray(gz)
        damaged[pos] ^= 0xFF
        d = zlib.decompressobj(31)
        out = b""
        try:
            for i in range(len(damaged)):
                out += d.decompress(bytes(damaged[i:i + 1]))
        except zlib.error as e:
            if "check" not in str(e) and len(out) >= ten and raw.startswith(out):
                return bytes(damaged)
    raise RuntimeError("no damage position found")


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main():
    good = frame(good_example(0)) + frame(good_example(1))
    # 1. Record lengths in the last values below 2^64 with a valid length CRC: length +
    # footer wrapped around and the reader read far outside its buffer.
    # Some bytes follow the header, so a wrapped-around size of a few bytes is "there".
    for k in (1, 3, 4, 16):
        write("tfrecord_framing", f"length_2p64_minus_{k}.tfrecord",
              good + header_only(2**64 - k) + b"\0" * 16)
    write("tfrecord_framing", "length_2p63.tfrecord", good + header_only(2**63) + b"\0" * 16)
    write("tfrecord_framing", "length_2p64_minus_4.tfrecord.gz",
          gzip.compress(good + header_only(2**64 - 4) + b"\0" * 16, mtime=0))
    write("tfrecord_framing", "length_2p64_minus_4.tfrecord.zz",
          zlib.compress(good + header_only(2**64 - 4) + b"\0" * 16))
    # 4. Damaged gzip: a corrupt deflate block after good records, and bytes after the
    # gzip member.
    write("tfrecord_framing", "gzip_corrupt_block_after_10.tfrecord.gz", damaged_gzip())
    write("tfrecord_framing", "gzip_trailing_garbage.tfrecord.gz",
          gzip.compress(good, mtime=0) + b"this is not gzip")

    # 2. Feature keys that are not valid UTF-8 (proto3 strings must be).
    bad_key = example(entry(b"ok", feature("int64", int64_list(1))),
                      entry(b"bad\xff\xfekey", feature("int64", int64_list(2))))
    write("example_decode", "key_not_utf8.pb", bad_key)
    write("example_decode", "key_half_utf8_sequence.pb",
          example(entry(b"caf\xc3", feature("float", float_list(1.5)))))
    write("tfrecord_framing", "key_not_utf8.tfrecord",
          frame(good_example(0)) + frame(bad_key) + frame(good_example(2)))
    # 3. Merge semantics: a value list twice in one Feature (packed and unpacked), a
    # Feature field twice in one map entry, Example.features twice, a key twice.
    write("example_decode", "list_twice_in_feature.pb",
          example(entry(b"x", feature("int64", int64_list(1, 2)) +
                        feature("int64", varint(1 << 3) + varint(3)))))
    write("example_decode", "oneof_switch_in_feature.pb",
          example(entry(b"x", feature("int64", int64_list(1)) +
                        feature("float", float_list(2.5)) +
                        feature("float", float_list(3.5)))))
    two_values = ld(1, ld(1, b"x") + ld(2, feature("bytes", bytes_list(b"a"))) +
                    ld(2, feature("bytes", bytes_list(b"b", b"c"))))
    write("example_decode", "feature_twice_in_entry.pb", ld(1, two_values))
    write("example_decode", "features_twice_in_example.pb",
          example(entry(b"x", feature("int64", int64_list(1))),
                  entry(b"y", feature("int64", int64_list(7)))) +
          example(entry(b"x", feature("int64", int64_list(2, 3)))))

    # 5. Starting points for the fuzzers (seed_*): well-formed inputs that reach every
    # value kind, shape and compression. The unit tests above leave them to the
    # fuzz_replay tests.
    all_kinds = example(
        entry(b"id", feature("int64", int64_list(7))),
        entry(b"name", feature("bytes", bytes_list(b"row-7"))),
        entry(b"x", feature("int64", int64_list(1, -2, 3))),
        entry(b"y", feature("float", float_list(0.5))),
        entry(b"b", feature("bytes", bytes_list(b"\x00\xff"))),
        entry(b"f", feature("float", float_list(1.0, 2.0, -3.5))),
        entry(b"s", feature("bytes", bytes_list(b"a", b"bc", b"\xc3\xa9"))),
        entry(b"flag", feature("int64", int64_list(1))),
        entry(b"ts", feature("int64", int64_list(1700000000000000))),
        entry(b"d", feature("float", float_list(-1e30))),
        entry(b"i8", feature("int64", int64_list(-128))))
    write("example_decode", "seed_all_kinds.pb", all_kinds)
    write("example_decode", "seed_unpacked_and_empty.pb",
          example(entry(b"x", feature("int64", varint(1 << 3) + varint(5) + varint(1 << 3) +
                                      varint(6))),
                  entry(b"f", feature("float", b"")),
                  entry(b"s", feature("bytes", b""))))
    write("sequence_example_decode", "seed_context_and_lists.pb",
          sequence_example(
              [entry(b"id", feature("int64", int64_list(3))),
               entry(b"name", feature("bytes", bytes_list(b"clip")))],
              [(b"seq_f", [feature("float", float_list(1.0, 2.0)),
                           feature("float", float_list(3.0))]),
               (b"seq_i", [feature("int64", int64_list(1)), feature("int64", int64_list())]),
               (b"seq_s", [feature("bytes", bytes_list(b"a", b"b"))])]))
    write("sequence_example_decode", "seed_lists_only.pb",
          sequence_example([], [(b"seq_f", [feature("float", float_list(0.25))] * 3)]))
    write("sequence_example_decode", "seed_context_only.pb",
          sequence_example([entry(b"x", feature("int64", int64_list(1, 2)))], []))

    records = [frame(good_example(i)) for i in range(3)] + [frame(all_kinds)]
    plain = b"".join(records)
    write("tfrecord_framing", "seed_plain.tfrecord", plain)
    write("tfrecord_framing", "seed_plain.tfrecord.gz", gzip.compress(plain, mtime=0))
    write("tfrecord_framing", "seed_plain.tfrecord.zz", zlib.compress(plain))
    # A data CRC error in the second record: --skip-corrupt skips it and reads on.
    bad_crc = bytearray(records[1])
    bad_crc[-1] ^= 0xFF
    write("tfrecord_framing", "seed_data_crc_error.tfrecord",
          records[0] + bytes(bad_crc) + records[2])


def feature_list(features):
    return b"".join(ld(1, f) for f in features)


def sequence_example(context_entries, lists):
    """SequenceExample{context: Features(context_entries), feature_lists: {name: features}}."""
    out = ld(1, b"".join(context_entries)) if context_entries else b""
    if lists:
        out += ld(2, b"".join(ld(1, ld(1, name) + ld(2, feature_list(fs)))
                              for name, fs in lists))
    return out


if __name__ == "__main__":
    main()
