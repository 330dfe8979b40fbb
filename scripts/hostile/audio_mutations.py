"""Hostile audio for the decoder fuzzer: seed files, header builders and hypothesis strategies.

``STRATEGIES`` maps an input kind to a strategy of ``bytes`` (or of ``str`` for the
``base64_text`` kind, which goes through ``decode_base64_audio``). Structure-aware kinds build
WAV/RF64 headers field by field with absurd values, rewrite FLAC STREAMINFO fields, and mutate
OGG pages (then re-sign their CRC so libogg does not simply drop them); the rest flip bits in,
truncate and splice real files. ``decompression_bombs()`` are small files that decode to
gigabytes; they cost seconds each, so the fuzzer runs them once instead of drawing them.
"""

from __future__ import annotations

import base64
import functools
import io
import struct
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import strategies as st

from judge_service.demo import examples_dir

INTERESTING_U32 = [0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                   0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
INTERESTING_U64 = [0, 1, 2**31, 2**32, 2**32 + 1, 2**62, 2**63 - 1, 2**63, 2**64 - 1]
ABSURD_RATES_HZ = [0, 1, 3_999, 4_000, 8_000, 16_000, 22_050, 44_100, 48_000, 192_000, 192_001,
                   1_000_000, 2**31 - 1, 2**32 - 1]
ABSURD_CHANNELS = [0, 1, 2, 6, 8, 32, 33, 255, 256, 0xFFFF]
SAMPLE_BITS = [0, 1, 4, 7, 8, 12, 16, 20, 24, 32, 48, 64, 0xFFFF]
WAV_FORMAT_TAGS = [0, 1, 2, 3, 6, 7, 0x11, 0x31, 0x50, 0x55, 0xFFFE, 0xFFFF]
"""PCM, MS ADPCM, IEEE float, A-law, mu-law, IMA ADPCM, GSM, MPEG, MP3, extensible, and junk."""
MAGICS = [b"RIFF", b"RIFX", b"RF64", b"BW64", b"fLaC", b"OggS", b"FORM", b"ID3", b"\xff\xfb",
          b".snd", b"caff", b"wvpk", b"MThd", b"#!AMR", b"\x30\x26\xb2\x75", b"PK\x03\x04"]
SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 2e38, 1e-45, -0.0, 1e30]
URLS = ["http://127.0.0.1:9/x.wav", "https://example.com/a.wav", "file:///etc/passwd",
        "ftp://host/x", "data:audio/wav;base64,UklGRg==", "s3://bucket/key", "//evil/x", "\\\\smb\\share"]


# --- builders ------------------------------------------------------------------------------


def wav_bytes(
    fmt_tag: int, channels: int, rate_hz: int, bits: int, data: bytes, *, block_align: int | None = None,
    byte_rate: int | None = None, declared_data_bytes: int | None = None, declared_riff_bytes: int | None = None,
    extra_chunks: tuple[tuple[bytes, bytes, int | None], ...] = (), extensible_subformat: int | None = None,
) -> bytes:
    """A RIFF/WAVE file from raw field values (each field masked to its width, never checked)."""
    align = ((channels * bits) // 8) if block_align is None else block_align
    rate = (rate_hz * align) if byte_rate is None else byte_rate
    fmt = struct.pack("<HHIIHH", fmt_tag & 0xFFFF, channels & 0xFFFF, rate_hz & 0xFFFFFFFF,
                      rate & 0xFFFFFFFF, align & 0xFFFF, bits & 0xFFFF)
    if extensible_subformat is not None:
        guid = struct.pack("<H", extensible_subformat & 0xFFFF) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits & 0xFFFF, 0x3) + guid
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    for chunk_id, payload, declared in extra_chunks:
        body += chunk_id[:4].ljust(4, b" ") + struct.pack("<I", (len(payload) if declared is None else declared) & 0xFFFFFFFF) + payload
    size = len(data) if declared_data_bytes is None else declared_data_bytes
    body += b"data" + struct.pack("<I", size & 0xFFFFFFFF) + data
    riff = len(body) if declared_riff_bytes is None else declared_riff_bytes
    return b"RIFF" + struct.pack("<I", riff & 0xFFFFFFFF) + body


def rf64_bytes(fmt_tag: int, channels: int, rate_hz: int, bits: int, data: bytes, riff_u64: int,
               data_u64: int, frames_u64: int) -> bytes:
    """An RF64 file whose ds64 chunk declares 64-bit sizes (the 32-bit fields say 0xFFFFFFFF)."""
    align = max((channels * bits) // 8, 0)
    fmt = struct.pack("<HHIIHH", fmt_tag & 0xFFFF, channels & 0xFFFF, rate_hz & 0xFFFFFFFF,
                      (rate_hz * align) & 0xFFFFFFFF, align & 0xFFFF, bits & 0xFFFF)
    ds64 = struct.pack("<QQQI", riff_u64 % 2**64, data_u64 % 2**64, frames_u64 % 2**64, 0)
    body = (b"WAVE" + b"ds64" + struct.pack("<I", len(ds64)) + ds64 + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", 0xFFFFFFFF) + data)
    return b"RF64" + struct.pack("<I", 0xFFFFFFFF) + body


def encode(samples: np.ndarray, rate_hz: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate_hz, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _tone(duration_s: float, rate_hz: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * rate_hz)) / rate_hz
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


@functools.lru_cache(maxsize=1)
def seed_files() -> dict[str, bytes]:
    """Real files to mutate: the bundled example clips plus one of each codec libsndfile reads."""
    seeds = {path.name: path.read_bytes() for path in sorted((examples_dir() / "audio").iterdir())}
    made = {
        "pcm16_16k_mono.wav": ("WAV", "PCM_16", 16_000, 1, 0.4), "float_48k_stereo.wav": ("WAV", "FLOAT", 48_000, 2, 0.2),
        "double_8k.wav": ("WAV", "DOUBLE", 8_000, 1, 0.3), "pcm24_44k.wav": ("WAV", "PCM_24", 44_100, 1, 0.2),
        "u8_8k.wav": ("WAV", "PCM_U8", 8_000, 1, 0.5), "ulaw_8k.wav": ("WAV", "ULAW", 8_000, 1, 0.5),
        "ima_adpcm_16k.wav": ("WAV", "IMA_ADPCM", 16_000, 1, 0.3), "ms_adpcm_16k.wav": ("WAV", "MS_ADPCM", 16_000, 2, 0.3),
        "gsm_8k.wav": ("WAV", "GSM610", 8_000, 1, 0.5), "pcm16_6ch.wavex": ("WAVEX", "PCM_16", 16_000, 6, 0.2),
        "pcm16_16k.rf64": ("RF64", "PCM_16", 16_000, 1, 0.3), "pcm24_96k.flac": ("FLAC", "PCM_24", 96_000, 2, 0.2),
        "pcm16_8k.flac": ("FLAC", "PCM_16", 8_000, 1, 0.5), "vorbis_44k.ogg": ("OGG", "VORBIS", 44_100, 2, 0.3),
        "opus_48k.ogg": ("OGG", "OPUS", 48_000, 1, 0.3), "pcm16_16k.aiff": ("AIFF", "PCM_16", 16_000, 1, 0.2),
        "empty.wav": ("WAV", "PCM_16", 16_000, 1, 0.0),
    }
    for i, (name, (fmt, subtype, rate, channels, duration_s)) in enumerate(made.items()):
        seeds[name] = encode(_tone(duration_s, rate, channels, seed=i), rate, fmt, subtype)
    return seeds


def ogg_crc(page: bytes) -> int:
    """libogg's page checksum: CRC-32, polynomial 0x04C11DB7, not reflected, initial 0."""
    table = _ogg_crc_table()
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) & 0xFF) ^ byte]
    return crc


@functools.lru_cache(maxsize=1)
def _ogg_crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if r & 0x80000000 else (r << 1) & 0xFFFFFFFF
        table.append(r)
    return tuple(table)


def ogg_pages(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each well-formed page in an OGG stream."""
    pages, pos = [], 0
    while pos + 27 <= len(data) and data[pos:pos + 4] == b"OggS":
        segments = data[pos + 26]
        end = pos + 27 + segments + sum(data[pos + 27:pos + 27 + segments])
        pages.append((pos, min(end, len(data))))
        pos = end
    return pages


def resign_ogg_page(data: bytearray, start: int, end: int) -> None:
    page = bytearray(data[start:end])
    page[22:26] = b"\x00\x00\x00\x00"
    data[start + 22:start + 26] = struct.pack("<I", ogg_crc(bytes(page)))


def set_streaminfo(flac: bytes, field: str, value: int) -> bytes:
    """Rewrite one STREAMINFO field of a FLAC file (bit-packed big-endian, right after 'fLaC')."""
    widths = {"min_block": (0, 16), "max_block": (16, 16), "min_frame": (32, 24), "max_frame": (56, 24),
              "rate_hz": (80, 20), "channels_minus_1": (100, 3), "bits_minus_1": (103, 5), "total_samples": (108, 36)}
    offset, width = widths[field]
    info = int.from_bytes(flac[8:42], "big")
    shift = 34 * 8 - offset - width
    info = (info & ~(((1 << width) - 1) << shift)) | ((value & ((1 << width) - 1)) << shift)
    return flac[:8] + info.to_bytes(34, "big") + flac[42:]


def decompression_bombs() -> dict[str, bytes]:
    """Small files that decode to ~59 s of many-channel, high-rate silence (cached on disk:
    the OGG one takes ~20 s to encode)."""
    cache = Path(tempfile.gettempdir()) / "paras2s-hostile-bombs"
    cache.mkdir(exist_ok=True)
    specs = {"flac_8ch_192k_59s": ("FLAC", "PCM_16", 8, 192_000), "vorbis_32ch_192k_59s": ("OGG", "VORBIS", 32, 192_000),
             "vorbis_8ch_48k_59s": ("OGG", "VORBIS", 8, 48_000)}
    bombs = {}
    for name, (fmt, subtype, channels, rate_hz) in specs.items():
        path = cache / f"{name}-sf{sf.__libsndfile_version__}.{fmt.lower()}"
        if not path.exists():
            buffer = io.BytesIO()
            with sf.SoundFile(buffer, "w", rate_hz, channels, format=fmt, subtype=subtype) as handle:
                silence = np.zeros((rate_hz, channels), dtype=np.float32)
                for _ in range(59):
                    handle.write(silence)
            path.write_bytes(buffer.getvalue())
        bombs[name] = path.read_bytes()
    return bombs


# --- strategies ----------------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
u32 = st.one_of(st.sampled_from(INTERESTING_U32), st.integers(0, 0xFFFFFFFF))
u64 = st.one_of(st.sampled_from(INTERESTING_U64), st.integers(0, 2**64 - 1))


@st.composite
def float_payload(draw: st.DrawFn, bits: int = 32, max_values: int = 4096) -> bytes:
    """Little-endian floats: a tone or noise with NaN/Inf/huge/denormal values spliced in."""
    n = draw(st.integers(0, max_values))
    if draw(st.booleans()):  # every sample one value: NaN, Inf, or near float32's largest
        return np.full(n, draw(st.sampled_from(SPECIAL_FLOATS)), dtype="<f4" if bits == 32 else "<f8").tobytes()
    values = np.sin(np.arange(n) * draw(st.floats(0.001, 3.0))) * draw(st.sampled_from([0.0, 0.5, 1.0, 1e3, 1e30]))
    for _ in range(draw(st.integers(0, 6)) if n else 0):
        values[draw(st.integers(0, n - 1))] = draw(st.sampled_from(SPECIAL_FLOATS))
    return values.astype("<f4" if bits == 32 else "<f8").tobytes()


pcm_payload = st.one_of(st.binary(max_size=4096), st.integers(0, 64_000).map(bytes), float_payload())


@st.composite
def wav_header(draw: st.DrawFn) -> bytes:
    extra = draw(st.lists(st.tuples(st.sampled_from([b"LIST", b"fact", b"junk", b"cue ", b"data", b"fmt ", b"smpl", b"\x00\x00\x00\x00"]),
                                    st.binary(max_size=64), st.none() | u32), max_size=3))
    return wav_bytes(
        draw(st.sampled_from(WAV_FORMAT_TAGS) | u16), draw(st.sampled_from(ABSURD_CHANNELS) | u16),
        draw(st.sampled_from(ABSURD_RATES_HZ) | u32), draw(st.sampled_from(SAMPLE_BITS) | u16), draw(pcm_payload),
        block_align=draw(st.none() | u16), byte_rate=draw(st.none() | u32), declared_data_bytes=draw(st.none() | u32),
        declared_riff_bytes=draw(st.none() | u32), extra_chunks=tuple(extra),
        extensible_subformat=draw(st.none() | st.sampled_from([1, 3, 6, 7, 0xFFFF]) | u16),
    )


@st.composite
def float_wav(draw: st.DrawFn) -> bytes:
    """A well-formed IEEE-float WAV (32 or 64 bit) whose samples include NaN, Inf or huge values."""
    bits, channels = draw(st.sampled_from([32, 64])), draw(st.integers(1, 3))
    rate_hz = draw(st.sampled_from([8_000, 16_000, 22_050, 48_000]))
    data = draw(float_payload(bits=bits, max_values=40_000))
    data = data[: len(data) - len(data) % (channels * bits // 8)]
    return wav_bytes(3, channels, rate_hz, bits, data, extensible_subformat=draw(st.none() | st.just(3)))


@st.composite
def rf64_header(draw: st.DrawFn) -> bytes:
    return rf64_bytes(draw(st.sampled_from([1, 3, 0xFFFE]) | u16), draw(st.sampled_from(ABSURD_CHANNELS)),
                      draw(st.sampled_from(ABSURD_RATES_HZ)), draw(st.sampled_from(SAMPLE_BITS)), draw(pcm_payload),
                      draw(u64), draw(u64), draw(u64))


def _apply(data: bytearray, op: str, position: int, value: int, blob: bytes) -> bytearray:
    pos = position % (len(data) + 1)
    if op == "bitflip" and pos < len(data):
        data[pos] ^= 1 << (value % 8)
    elif op == "set_byte" and pos < len(data):
        data[pos] = value & 0xFF
    elif op == "set_u32" and pos + 4 <= len(data):
        data[pos:pos + 4] = struct.pack("<I", value & 0xFFFFFFFF)
    elif op == "set_u32_be" and pos + 4 <= len(data):
        data[pos:pos + 4] = struct.pack(">I", value & 0xFFFFFFFF)
    elif op == "truncate":
        del data[pos:]
    elif op == "delete":
        del data[pos:pos + 1 + value % 512]
    elif op == "insert":
        data[pos:pos] = blob
    elif op == "duplicate":
        data[pos:pos] = data[pos:pos + 1 + value % 4096]
    return data


mutation = st.tuples(
    st.sampled_from(["bitflip", "set_byte", "set_u32", "set_u32_be", "truncate", "delete", "insert", "duplicate"]),
    st.one_of(st.integers(0, 64), st.integers(0, 512), st.integers(0, 2**20)),  # mostly in the headers
    st.one_of(st.sampled_from(INTERESTING_U32), st.integers(0, 0xFFFFFFFF)),
    st.binary(max_size=32),
)


@st.composite
def mutated_seed(draw: st.DrawFn) -> bytes:
    seeds = seed_files()
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    for op in draw(st.lists(mutation, min_size=1, max_size=8)):
        data = _apply(data, *op)
    return bytes(data)


@st.composite
def flac_streaminfo(draw: st.DrawFn) -> bytes:
    seeds = seed_files()
    data = seeds[draw(st.sampled_from(sorted(n for n in seeds if n.endswith(".flac"))))]
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(["min_block", "max_block", "min_frame", "max_frame", "rate_hz",
                                      "channels_minus_1", "bits_minus_1", "total_samples"]))
        data = set_streaminfo(data, field, draw(st.sampled_from(INTERESTING_U64) | st.integers(0, 2**36 - 1)))
    return data


@st.composite
def ogg_page_fields(draw: st.DrawFn) -> bytes:
    """Mutate one field of one page of a real OGG file, then fix that page's CRC."""
    seeds = seed_files()
    data = bytearray(seeds[draw(st.sampled_from(sorted(n for n in seeds if n.endswith(".ogg"))))])
    pages = ogg_pages(bytes(data))
    for _ in range(draw(st.integers(1, 3))):
        start, end = pages[draw(st.integers(0, len(pages) - 1))]
        where = draw(st.sampled_from(["granule", "header_type", "serial", "sequence", "segments", "body", "id_header"]))
        if where == "granule":
            data[start + 6:start + 14] = struct.pack("<Q", draw(u64))
        elif where == "header_type":
            data[start + 5] = draw(st.integers(0, 255))
        elif where == "serial":
            data[start + 14:start + 18] = struct.pack("<I", draw(u32) & 0xFFFFFFFF)
        elif where == "sequence":
            data[start + 18:start + 22] = struct.pack("<I", draw(u32) & 0xFFFFFFFF)
        elif where == "segments" and data[start + 26]:
            data[start + 27 + draw(st.integers(0, data[start + 26] - 1))] = draw(st.integers(0, 255))
        elif where in ("body", "id_header"):
            body = start + 27 + data[start + 26]
            span = max(end - body, 1)
            # Vorbis/Opus identification headers keep channels and rate in their first ~20 bytes.
            offset = draw(st.integers(0, min(span, 20) - 1)) if where == "id_header" else draw(st.integers(0, span - 1))
            if body + offset < len(data):
                data[body + offset] = draw(st.sampled_from([0, 1, 2, 0x20, 0x7F, 0x80, 0xFF]) | st.integers(0, 255))
        resign_ogg_page(data, start, min(end, len(data)))
    return bytes(data)


@st.composite
def edge_sizes(draw: st.DrawFn) -> bytes:
    """Empty input, single bytes, and real files cut inside or right after their headers."""
    seeds = seed_files()
    seed = seeds[draw(st.sampled_from(sorted(seeds)))]
    return draw(st.sampled_from([b"", b"\x00", b"R", b"RIFF", b"fLaC", b"OggS"]) | st.integers(0, 128).map(lambda n: seed[:n]))


@st.composite
def base64_text(draw: st.DrawFn) -> str:
    """Text for ``decode_base64_audio``: URLs, junk, and base64 of real files, corrupted."""
    seeds = seed_files()
    valid = base64.b64encode(seeds[draw(st.sampled_from(sorted(seeds)))][: draw(st.integers(0, 20_000))]).decode()
    how = draw(st.sampled_from(["random", "alphabet", "url", "strip_padding", "whitespace", "non_ascii",
                                "urlsafe", "data_uri", "bad_length", "extra_padding", "valid"]))
    if how == "random":
        return draw(st.text(max_size=300))
    if how == "alphabet":
        return draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\t\r", max_size=400))
    if how == "url":
        return draw(st.sampled_from(URLS))
    if how == "strip_padding":
        return valid.rstrip("=")
    if how == "whitespace":
        pos = draw(st.integers(0, len(valid)))
        return valid[:pos] + draw(st.sampled_from([" ", "\n", "\r\n", "\t", "\x00"])) + valid[pos:]
    if how == "non_ascii":
        pos = draw(st.integers(0, len(valid)))
        return valid[:pos] + draw(st.sampled_from(["é", "\u2028", "\ud800", "Ａ", "\U0001f600"])) + valid[pos:]
    if how == "urlsafe":
        return valid.replace("+", "-").replace("/", "_")
    if how == "data_uri":
        return "data:audio/wav;base64," + valid
    if how == "bad_length":
        return valid + draw(st.sampled_from(["A", "AB=", "ABC", "====", "=A=="]))
    if how == "extra_padding":
        return valid + "=" * draw(st.integers(1, 8))
    return valid


STRATEGIES: dict[str, st.SearchStrategy] = {
    "random_bytes": st.binary(max_size=2048),
    "magic_prefix": st.tuples(st.sampled_from(MAGICS), st.binary(max_size=1024)).map(lambda t: t[0] + t[1]),
    "wav_header": wav_header(),
    "float_wav": float_wav(),
    "rf64_header": rf64_header(),
    "mutated_seed": mutated_seed(),
    "flac_streaminfo": flac_streaminfo(),
    "ogg_page_fields": ogg_page_fields(),
    "edge_sizes": edge_sizes(),
    "base64_text": base64_text(),
}
"""Input kind -> strategy. Every kind but ``base64_text`` (str) produces bytes."""
