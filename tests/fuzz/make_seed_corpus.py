"""Writes the fuzzers' well-formed starting points (seed_*) that need a library to
make: audio_decode/ (WAV, FLAC and OGG/Vorbis clips, with soundfile) and manifest/
(a dlprep _manifest.json, with pyarrow's IPC schema). The text seeds of the other
folders are written by hand. Run: .venv/bin/python tests/fuzz/make_seed_corpus.py"""
import base64
import io
import json
import math
from pathlib import Path

import pyarrow as pa
import soundfile as sf

CORPUS = Path(__file__).resolve().parent / "corpus"


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def clip(frames, channels):
    return [[math.sin(0.05 * i * (c + 1)) * 0.5 for c in range(channels)] for i in range(frames)]


def encode(frames, channels, rate, fmt, subtype):
    buf = io.BytesIO()
    sf.write(buf, clip(frames, channels), rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def main():
    write("audio_decode", "seed_pcm16_mono_8k.wav", encode(64, 1, 8000, "WAV", "PCM_16"))
    write("audio_decode", "seed_pcm8_stereo_11k.wav", encode(48, 2, 11025, "WAV", "PCM_U8"))
    write("audio_decode", "seed_pcm24_mono_16k.wav", encode(32, 1, 16000, "WAV", "PCM_24"))
    write("audio_decode", "seed_float_stereo_44k.wav", encode(32, 2, 44100, "WAV", "FLOAT"))
    write("audio_decode", "seed_double_mono_22k.wav", encode(16, 1, 22050, "WAV", "DOUBLE"))
    write("audio_decode", "seed_pcm16_mono_16k.flac", encode(256, 1, 16000, "FLAC", "PCM_16"))
    write("audio_decode", "seed_vorbis_mono_16k.ogg", encode(512, 1, 16000, "OGG", "VORBIS"))

    schema = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])
    manifest = {
        "dlprep_version": "0.1.0", "format": "tfrecord", "compression": "none",
        "record_type": "example", "rows": 2, "bytes": 96,
        "files": [{"name": "part-00000.tfrecord", "rows": 2, "bytes": 96}],
        "schema": [{"name": "id", "type": "int64"}, {"name": "name", "type": "string"}],
        "arrow_schema": base64.b64encode(schema.serialize().to_pybytes()).decode(),
        "features": {"id": {"dtype": "int64", "shape": [], "fixed_length": True,
                            "sequence": False},
                     "name": {"dtype": "string", "shape": [], "fixed_length": True,
                              "sequence": False}},
    }
    write("manifest", "seed_tfrecord.json", (json.dumps(manifest, indent=2) + "\n").encode())
    manifest.update(compression="gzip", record_type="sequence_example", files=[])
    write("manifest", "seed_gzip_no_files.json", json.dumps(manifest).encode())


if __name__ == "__main__":
    main()
