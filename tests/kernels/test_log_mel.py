"""Log-mel: the Triton kernels and the torch path against the float64 reference.

Without a GPU the Triton kernels run in Triton's CPU interpreter, on tiny shapes.  Triton reads
``TRITON_INTERPRET`` when a kernel is decorated, i.e. when ``judge_service.features.kernels`` is
first imported, so it is set here, before anything imports that module (``ops`` imports it
lazily), and ``test_interpreter_engaged`` checks that it took.  With a GPU the variable is left
alone: the compiled kernels are tested by the ``gpu``-marked tests (``pytest -m gpu``).
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from judge_service.features import frame_offsets, log_mel_spectrogram, ops  # noqa: E402
from judge_service.features.reference import (  # noqa: E402
    SAMPLE_RATE_HZ,
    log_mel_spectrogram_reference,
    mel_filters,
)

HAS_CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
interpreter_only = pytest.mark.skipif(
    HAS_CUDA, reason="with a GPU the compiled kernels are tested instead (pytest -m gpu)"
)

# (relative L2, max abs) against the float64 reference, features in Whisper units, on
# broadband input.  "tf32" rounds dot inputs to a 10-bit mantissa (emulated on CPU: ~2e-4 /
# ~6e-3); the bounds leave ~5x margin.
TOLERANCES = {"ieee": (1e-5, 1e-4), "tf32x3": (1e-5, 1e-4), "tf32": (1e-3, 3e-2)}
# One loud tone over a weak noise floor: fp32 rounding of the loud bin leaks into the quiet
# ones; torch.stft and our kernels alike land near 3e-5 / 4e-4.
TONAL_TOLERANCE = (1e-4, 1e-3)
ODD_LENGTHS = [0, 1, 159, 160, 399, 400, 401]


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


def broadband_clip(num_samples: int, seed: int) -> torch.Tensor:
    """float32 noise under a random slowly varying envelope (~40 dB), like speech in level."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(num_samples, generator=gen, dtype=torch.float64)
    knots = torch.rand(num_samples // 1600 + 2, generator=gen, dtype=torch.float64)
    envelope = torch.nn.functional.interpolate(
        (10.0 ** (-2.0 * knots))[None, None], size=max(num_samples, 1), mode="linear"
    )[0, 0, :num_samples]
    return (0.3 * noise * envelope).clamp(-1.0, 1.0).to(torch.float32)


def tonal_clip(num_samples: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples, dtype=torch.float64) / SAMPLE_RATE_HZ
    tone = 0.5 * torch.sin(2 * torch.pi * 440.0 * t)
    return (tone + 1e-3 * torch.randn(num_samples, generator=gen, dtype=torch.float64)).float()


def random_lengths(count: int, max_samples: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, max_samples + 1, (count,), generator=gen).tolist()


def reference_packed(clips: list[torch.Tensor], n_mels: int) -> torch.Tensor:
    """float64 ``(total_frames, n_mels)``: the specification, clip by clip."""
    blocks = [log_mel_spectrogram_reference(c.cpu(), n_mels).T for c in clips]
    return torch.cat(blocks) if blocks else torch.zeros(0, n_mels, dtype=torch.float64)


def as_packed(features: torch.Tensor, num_frames: torch.Tensor, layout: str) -> torch.Tensor:
    """Back to ``(total_frames, n_mels)``; for the padded layout also checks the zero padding."""
    if layout == "packed":
        return features
    rows = []
    for i, n in enumerate(num_frames.tolist()):
        assert torch.all(features[i, :, n:] == 0), f"clip {i}: padding is not zero"
        rows.append(features[i, :, :n].T)
    return torch.cat(rows) if rows else features.new_zeros(0, features.shape[1])


def assert_close_to_reference(packed: torch.Tensor, reference: torch.Tensor, tolerance) -> None:
    max_rel_l2, max_abs = tolerance
    assert packed.shape == reference.shape
    assert torch.isfinite(packed).all(), "non-finite features (unwritten output?)"
    if reference.numel() == 0:
        return
    diff = packed.double().cpu() - reference
    rel_l2 = (diff.norm() / reference.norm()).item()
    worst = diff.abs().max().item()
    assert rel_l2 <= max_rel_l2 and worst <= max_abs, f"rel L2 {rel_l2:.2e}, max abs {worst:.2e}"


def kernels_module():
    """``judge_service.features.kernels``, or skip where Triton is not installed."""
    pytest.importorskip("triton")
    from judge_service.features import kernels

    return kernels


def check_features(features, num_frames, layout, clips, n_mels, tolerance) -> None:
    """Features of either layout, on any device, against the float64 reference."""
    packed = as_packed(features, num_frames, layout).cpu()
    assert_close_to_reference(packed, reference_packed(clips, n_mels), tolerance)


def run_kernel(clips, n_mels, layout, precision="ieee", blocks=None, device=None):
    """The Triton launcher on a packed waveform, writing into an output poisoned with NaN."""
    kernels = kernels_module()

    device = device or ("cuda" if HAS_CUDA else "cpu")
    lengths = [c.shape[0] for c in clips]
    waveform = torch.cat(clips).to(device) if clips else torch.zeros(0, device=device)
    offsets = torch.tensor([0, *np.cumsum(lengths).tolist()], dtype=torch.int64)
    num_frames = torch.tensor([n // 160 for n in lengths], dtype=torch.int64)
    if layout == "padded":
        shape = (len(clips), n_mels, int(num_frames.max()) if clips else 0)
    else:
        shape = (int(num_frames.sum()), n_mels)
    out = torch.full(shape, float("nan"), device=device)
    features, got_frames = kernels.log_mel_spectrogram_triton(
        waveform, offsets, n_mels, layout, precision, out=out, blocks=blocks
    )
    assert features.data_ptr() == out.data_ptr()
    assert torch.equal(got_frames, num_frames)
    return features, num_frames


# ---------------------------------------------------------------- Triton in the interpreter


@interpreter_only
def test_interpreter_engaged():
    kernels = kernels_module()
    assert kernels.interpreter_active(), "TRITON_INTERPRET was set too late: kernels compiled"
    assert kernels.PRECISIONS == ops.PRECISIONS


@interpreter_only
@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_kernel_odd_lengths_interpreter(n_mels, layout):
    clips = [broadband_clip(n, _seed("odd", n_mels, layout, n)) for n in ODD_LENGTHS]
    features, num_frames = run_kernel(clips, n_mels, layout)
    assert num_frames.tolist() == [0, 0, 0, 1, 2, 2, 2]
    check_features(features, num_frames, layout, clips, n_mels, TOLERANCES["ieee"])


@interpreter_only
@pytest.mark.parametrize("batch", [1, 7])
def test_kernel_random_lengths_interpreter(batch):
    lengths = random_lengths(batch, 3000, _seed("random", batch))
    clips = [broadband_clip(n, _seed("random", batch, i)) for i, n in enumerate(lengths)]
    for layout in ("padded", "packed"):
        features, num_frames = run_kernel(clips, 80, layout)
        check_features(features, num_frames, layout, clips, 80, TOLERANCES["ieee"])


@interpreter_only
def test_kernel_gpu_tiling_interpreter():
    """The GPU tile sizes (several frequency and K chunks), including tiles that lie wholly
    inside their clip and skip the reflection arithmetic."""
    kernels = kernels_module()

    clips = [broadband_clip(n, _seed("gpu-tiles", n)) for n in (401, 160 * 140 + 7)]
    features, num_frames = run_kernel(clips, 128, "padded", blocks=kernels.GPU_BLOCKS)
    check_features(features, num_frames, "padded", clips, 128, TOLERANCES["ieee"])


@interpreter_only
def test_kernel_batch_invariance_interpreter():
    """A clip's features are bit-identical alone and among neighbours (interior tiles too)."""
    target = broadband_clip(160 * 50 + 33, _seed("invariance"))
    alone, _ = run_kernel([target], 80, "packed")
    neighbours = [broadband_clip(n, _seed("neighbour", n)) for n in (1234, 0, 999)]
    together, num_frames = run_kernel([neighbours[0], target, *neighbours[1:]], 80, "packed")
    rows = frame_offsets(num_frames).tolist()
    assert torch.equal(together[rows[1] : rows[2]], alone)


@interpreter_only
@pytest.mark.parametrize("precision", ["tf32x3", "tf32"])
def test_kernel_precisions_run_interpreter(precision):
    """The interpreter computes every ``tl.dot`` in fp32 whatever ``input_precision`` says, so
    this only checks the plumbing; the bounds of the fast modes are checked on a GPU."""
    clips = [broadband_clip(n, _seed("precision", precision, n)) for n in (401, 1700)]
    features, num_frames = run_kernel(clips, 80, "padded", precision)
    check_features(features, num_frames, "padded", clips, 80, TOLERANCES[precision])


@interpreter_only
def test_kernel_tonal_interpreter():
    clip = tonal_clip(160 * 30, _seed("tonal"))
    features, _ = run_kernel([clip], 80, "packed")
    assert_close_to_reference(features, reference_packed([clip], 80), TONAL_TOLERANCE)


@interpreter_only
def test_triton_impl_packed_input_and_normalize_interpreter():
    lengths = [401, 0, 2000, 160]
    clips = [broadband_clip(n, _seed("ops-triton", n)) for n in lengths]
    waveform, offsets = torch.cat(clips), torch.tensor([0, *np.cumsum(lengths).tolist()])
    packed, num_frames = log_mel_spectrogram(waveform, 80, "packed", impl="triton", offsets=offsets)
    assert_close_to_reference(packed, reference_packed(clips, 80), TOLERANCES["ieee"])
    normalized, _ = log_mel_spectrogram(waveform, 80, "padded", impl="triton", offsets=offsets, normalize=True)
    expected = reference_normalized(clips, 80)
    assert_close_to_reference(as_packed(normalized, num_frames, "padded"), expected, (1e-5, 1e-3))


_COMPILE_FOR_HOPPER = """
import itertools, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from judge_service.features import kernels as K

assert not K.interpreter_active()
target = GPUTarget("cuda", 90, 32)
pointer = {"sample_off_ptr": "*i64", "frame_off_ptr": "*i64"}

def compile_(fn, constants, num_warps):
    signature = {
        name: "constexpr" if name in constants else pointer.get(name, "*fp32" if name.endswith("_ptr") else "i32")
        for name in fn.arg_names
    }
    triton.compile(ASTSource(fn, signature, constants), target=target, options={"num_warps": num_warps})

bf, bk, bq = K.GPU_BLOCKS
for precision, packed in itertools.product(K.PRECISIONS, (True, False)):
    compile_(K._log_mel_tile_kernel, dict(
        N_MELS=80, M_PAD=K.MEL_PAD, F_PAD=triton.cdiv(201, bq) * bq, K_LOOP=triton.cdiv(400, bk) * bk,
        PACKED=packed, BLOCK_FRAMES=bf, BLOCK_K=bk, BLOCK_FREQ=bq, DOT_PRECISION=precision,
    ), K.GPU_NUM_WARPS)
for packed in (True, False):
    compile_(K._log_mel_finalize_kernel, dict(
        N_MELS=128, M_PAD=K.MEL_PAD, PACKED=packed, TILE_FRAMES=bf, BLOCK_FRAMES=64, BLOCK_TILES=128,
    ), 4)
print("compiled")
"""


def test_kernels_compile_for_hopper():
    """The compiled (non-interpreted) path, without a GPU: Triton's front end and ptxas for
    sm_90 on every precision and layout, in a fresh process without TRITON_INTERPRET."""
    pytest.importorskip("triton")
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE_FOR_HOPPER], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "compiled" in result.stdout, result.stderr[-3000:]


# ------------------------------------------------------------------------- Triton on a GPU


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("precision", ["ieee", "tf32x3", "tf32"])
@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("batch", [1, 7])
def test_kernel_matches_reference_gpu(batch, n_mels, layout, precision):
    seed = _seed("gpu", batch, n_mels, layout, precision)
    lengths = ODD_LENGTHS if batch == 7 else random_lengths(1, 30 * SAMPLE_RATE_HZ, seed)
    clips = [broadband_clip(n, seed + i) for i, n in enumerate(lengths)]
    features, num_frames = run_kernel(clips, n_mels, layout, precision)
    check_features(features, num_frames, layout, clips, n_mels, TOLERANCES[precision])
    # And a ragged batch of long random clips.
    lengths = random_lengths(batch, 30 * SAMPLE_RATE_HZ, seed + 99)
    clips = [broadband_clip(n, seed + 100 + i) for i, n in enumerate(lengths)]
    features, num_frames = run_kernel(clips, n_mels, layout, precision)
    check_features(features, num_frames, layout, clips, n_mels, TOLERANCES[precision])


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("blocks", [(64, 32, 32), (16, 32, 32), (32, 16, 64), (16, 16, 16)])
def test_kernel_other_tilings_gpu(blocks):
    lengths = [*ODD_LENGTHS, 160 * 300 + 77]
    clips = [broadband_clip(n, _seed("tilings", n)) for n in lengths]
    features, num_frames = run_kernel(clips, 80, "padded", blocks=blocks)
    check_features(features, num_frames, "padded", clips, 80, TOLERANCES["ieee"])


@pytest.mark.gpu
@gpu
def test_kernel_batch_invariance_gpu():
    target = broadband_clip(12 * SAMPLE_RATE_HZ + 31, _seed("gpu-invariance"))
    alone, _ = run_kernel([target], 128, "padded")
    others = [broadband_clip(n, _seed("gpu-neighbour", n)) for n in (30 * SAMPLE_RATE_HZ, 0, 401)]
    together, num_frames = run_kernel([others[0], target, *others[1:]], 128, "padded")
    n = int(num_frames[1])
    assert torch.equal(together[1, :, :n], alone[0])


@pytest.mark.gpu
@gpu
def test_auto_dispatch_and_torch_fallback_gpu():
    clips = [broadband_clip(n, _seed("auto", n)).cuda() for n in (401, 5 * SAMPLE_RATE_HZ, 0)]
    auto, _ = log_mel_spectrogram(clips, 80, "packed")
    triton, _ = log_mel_spectrogram(clips, 80, "packed", impl="triton")
    assert torch.equal(auto, triton)
    torch_path, _ = log_mel_spectrogram(clips, 80, "packed", impl="torch")
    assert_close_to_reference(torch_path.cpu(), reference_packed(clips, 80), TOLERANCES["ieee"])
    packed = torch.cat(clips)
    offsets = torch.tensor([0, 401, 401 + 5 * SAMPLE_RATE_HZ, packed.shape[0]])
    from_packed, _ = log_mel_spectrogram(packed, 80, "packed", offsets=offsets)
    assert torch.equal(from_packed, triton)


# ------------------------------------------------------------------------------ torch path


def reference_normalized(clips: list[torch.Tensor], n_mels: int) -> torch.Tensor:
    rows = []
    for clip in clips:
        ref = log_mel_spectrogram_reference(clip, n_mels).T
        if ref.shape[0]:
            rows.append((ref - ref.mean(0)) / (ref.std(0, unbiased=False) + ops.NORMALIZE_EPS))
    return torch.cat(rows) if rows else torch.zeros(0, n_mels, dtype=torch.float64)


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_torch_path_matches_reference(n_mels, layout):
    seed = _seed("torch", n_mels, layout)
    lengths = [*ODD_LENGTHS, 199, 200, 201, 561, SAMPLE_RATE_HZ, 7 * SAMPLE_RATE_HZ + 123]
    lengths += random_lengths(5, 12 * SAMPLE_RATE_HZ, seed)
    clips = [broadband_clip(n, seed + i) for i, n in enumerate(lengths)]
    features, num_frames = log_mel_spectrogram(clips, n_mels, layout, impl="torch")
    assert num_frames.tolist() == [n // 160 for n in lengths]
    check_features(features, num_frames, layout, clips, n_mels, TOLERANCES["ieee"])


def test_torch_path_many_groups_and_batch_invariance():
    """More frames than one cache-sized group; a clip's rows do not depend on its neighbours."""
    lengths = random_lengths(9, 20 * SAMPLE_RATE_HZ, _seed("groups"))
    clips = [broadband_clip(n, _seed("groups", i)) for i, n in enumerate(lengths)]
    packed, num_frames = log_mel_spectrogram(clips, 80, "packed", impl="torch")
    assert int(num_frames.sum()) > 2 * ops.TORCH_GROUP_FRAMES
    assert_close_to_reference(packed, reference_packed(clips, 80), TOLERANCES["ieee"])
    rows = frame_offsets(num_frames).tolist()
    for i in (0, 4, 8):
        alone, _ = log_mel_spectrogram([clips[i]], 80, "packed", impl="torch")
        torch.testing.assert_close(packed[rows[i] : rows[i + 1]], alone, rtol=0, atol=1e-6)


def test_torch_path_tonal():
    clip = tonal_clip(3 * SAMPLE_RATE_HZ, _seed("torch-tonal"))
    packed, _ = log_mel_spectrogram([clip], 80, "packed", impl="torch")
    assert_close_to_reference(packed, reference_packed([clip], 80), TONAL_TOLERANCE)


def test_auto_on_cpu_is_the_torch_path_without_warning():
    """The service's call (list of clips, packed, impl auto) stays on the torch path on CPU."""
    clips = [broadband_clip(n, _seed("auto-cpu", n)) for n in (16000, 401, 0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto, num_frames = log_mel_spectrogram(clips, n_mels=80, layout="packed")
    explicit, _ = log_mel_spectrogram(clips, 80, "packed", impl="torch")
    assert torch.equal(auto, explicit)
    assert_close_to_reference(auto, reference_packed(clips, 80), TOLERANCES["ieee"])


def test_packed_waveform_with_offsets_equals_list():
    lengths = [401, 0, 16000, 1, 3333]
    clips = [broadband_clip(n, _seed("offsets", n)) for n in lengths]
    offsets = torch.tensor([0, *np.cumsum(lengths).tolist()])
    for layout in ("padded", "packed"):
        from_list, frames_a = log_mel_spectrogram(clips, 80, layout, impl="torch")
        from_packed, frames_b = log_mel_spectrogram(torch.cat(clips), 80, layout, impl="torch", offsets=offsets)
        assert torch.equal(from_list, from_packed) and torch.equal(frames_a, frames_b)


def test_reference_impl_agrees():
    clips = [broadband_clip(n, _seed("ref-impl", n)) for n in (401, 2000)]
    features, num_frames = log_mel_spectrogram(clips, 128, "padded", impl="reference")
    assert_close_to_reference(as_packed(features, num_frames, "padded"), reference_packed(clips, 128), (1e-7, 1e-6))


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_normalize_ignores_padding(layout):
    lengths = [5 * SAMPLE_RATE_HZ, 401, 0, 2 * SAMPLE_RATE_HZ + 5]
    clips = [broadband_clip(n, _seed("normalize", n)) for n in lengths]
    features, num_frames = log_mel_spectrogram(clips, 80, layout, impl="torch", normalize=True)
    packed = as_packed(features, num_frames, layout)  # padded: also asserts zero padding
    assert_close_to_reference(packed, reference_normalized(clips, 80), (1e-5, 1e-3))
    # Each clip's normalisation uses its own frames only: same result alone as in the batch.
    alone, _ = log_mel_spectrogram([clips[1]], 80, "packed", impl="torch", normalize=True)
    rows = frame_offsets(num_frames).tolist()
    torch.testing.assert_close(packed[rows[1] : rows[2]], alone, rtol=0, atol=1e-5)


# ------------------------------------------------------------------- third-party references


@pytest.mark.parametrize("n_mels", [80, 128])
def test_matches_hf_whisper_feature_extractor_numpy(n_mels, monkeypatch):
    """HF's numpy path, on one clip at a time so padding="longest" adds nothing."""
    fe_module = pytest.importorskip("transformers.models.whisper.feature_extraction_whisper")
    monkeypatch.setattr(fe_module, "is_torch_available", lambda: False)
    extractor = fe_module.WhisperFeatureExtractor(feature_size=n_mels)
    for n in (400, 401, SAMPLE_RATE_HZ, 3 * SAMPLE_RATE_HZ + 77):
        clip = broadband_clip(n, _seed("hf", n_mels, n))
        expected = extractor(clip.numpy(), sampling_rate=SAMPLE_RATE_HZ, padding="longest", return_tensors="np")
        ours, _ = log_mel_spectrogram([clip], n_mels, "padded", impl="torch")
        got = torch.from_numpy(expected["input_features"][0]).double()
        assert_close_to_reference(ours[0].T, got.T, (1e-5, 1e-4))


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_match_torchaudio(n_mels):
    torchaudio_functional = pytest.importorskip("torchaudio.functional")
    theirs = torchaudio_functional.melscale_fbanks(
        201, 0.0, SAMPLE_RATE_HZ / 2, n_mels, SAMPLE_RATE_HZ, norm="slaney", mel_scale="slaney"
    )  # (n_freqs, n_mels), float32
    torch.testing.assert_close(mel_filters(n_mels, torch.float64).T, theirs.double(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------- validation, dispatch


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_mels": 64}, ValueError),
        ({"layout": "ragged"}, ValueError),
        ({"impl": "cuda"}, ValueError),
        ({"precision": "bf16"}, ValueError),
        ({"impl": "torch", "precision": "tf32"}, ValueError),
        ({"impl": "reference", "precision": "tf32x3"}, ValueError),
    ],
)
def test_bad_options(kwargs, error):
    with pytest.raises(error):
        log_mel_spectrogram([torch.zeros(400)], **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="float32"):
        log_mel_spectrogram([torch.zeros(400, dtype=torch.float64)])
    with pytest.raises(ValueError, match="1-D"):
        log_mel_spectrogram([torch.zeros(2, 400)])
    with pytest.raises(ValueError, match="1-D"):
        log_mel_spectrogram([np.zeros(400, dtype=np.float32)])
    with pytest.raises(ValueError, match="needs offsets"):
        log_mel_spectrogram(torch.zeros(400))
    with pytest.raises(ValueError, match="only for a packed"):
        log_mel_spectrogram([torch.zeros(400)], offsets=torch.tensor([0, 400]))
    for bad in ([1, 400], [0, 300], [0, 300, 200, 400]):
        with pytest.raises(ValueError, match="rise from 0"):
            log_mel_spectrogram(torch.zeros(400), offsets=torch.tensor(bad))
    with pytest.raises(TypeError, match="integer"):
        log_mel_spectrogram(torch.zeros(400), offsets=torch.tensor([0.0, 400.0]))
    with pytest.raises(TypeError, match="float32"):
        log_mel_spectrogram(torch.zeros(400, dtype=torch.float16), offsets=torch.tensor([0, 400]))


def test_empty_batches():
    for layout, shape in (("padded", (0, 80, 0)), ("packed", (0, 80))):
        features, num_frames = log_mel_spectrogram([], 80, layout)
        assert tuple(features.shape) == shape and num_frames.shape == (0,)
        features, num_frames = log_mel_spectrogram([torch.zeros(100), torch.zeros(0)], 80, layout, impl="torch")
        assert features.shape[0] == (2 if layout == "padded" else 0) and num_frames.tolist() == [0, 0]


def test_launcher_rejects_a_wrong_out():
    kernels = kernels_module()
    with pytest.raises(ValueError, match="out must be"):
        kernels.log_mel_spectrogram_triton(
            torch.zeros(800), torch.tensor([0, 800]), 80, "packed", out=torch.empty(4, 80)
        )


def test_triton_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    kernels = kernels_module()
    monkeypatch.setattr(kernels, "interpreter_active", lambda: False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        log_mel_spectrogram([torch.zeros(400)], impl="triton")


def test_cuda_fallback_warns_once(monkeypatch):
    """CUDA tensors without Triton: torch path, one warning per process (not per call)."""
    monkeypatch.setattr(ops, "_warned", set())
    monkeypatch.setattr(ops, "_kernels_or_error", lambda: (None, ImportError("No module named 'triton'")))
    cuda = torch.device("cuda")
    with pytest.warns(RuntimeWarning, match="triton is not importable"):
        assert ops._resolve_impl("auto", cuda) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ops._resolve_impl("auto", cuda) == "torch"
    assert ops._resolve_impl("auto", torch.device("cpu")) == "torch"
    with pytest.raises(ImportError, match="needs the triton package"):
        ops._resolve_impl("triton", cuda)
