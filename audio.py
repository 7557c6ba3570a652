"""Audio: decode any common file to mono float32 at a sample rate (`load_audio`), and the one log-mel
function (`log_mel`) that training, evaluation and prediction all use; `clip_from_wave` is the cached clip.

- `load_audio`: decode (libsndfile: mp3, wav, flac, ogg, ...) in blocks, mix to mono, resample with
  soxr; memory follows the audio in the file, whatever length its header claims. Every failure is an
  `AudioError` whose message names the file and the reason. `audio_blocks` gives the same samples as they
  are decoded, so that a song of any length is never held whole.
- `log_mel`: log-mel power in dB; equal to librosa's melspectrogram + power_to_db (tested);
  `log_mel_blocks` computes it, bit for bit, of a signal that comes in blocks.

    python -c "import audio; print(audio.load_audio('song.mp3', 22050).shape)"
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from config import AudioConfig

# --------------------------------------------------------------------------------------------------
# Audio decoding

class AudioError(Exception):
    """A file could not be turned into usable audio; str() names the file and the reason."""


# extensions libsndfile decodes; anything else goes to the fallback decoder
SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64"}
TRUNCATED_RATIO = 0.9  # decoded / declared length below this (and > 1 s missing) means a truncated file
# samples (all channels) decoded per read: 16 MB of float32, more than a 30 s stereo clip (2.6 M), which
# is thus read in one call: soundfile seeks to where it stands after every read, and libsndfile's MP3
# decoder resumes from a seek with 1-ulp differences (its FLAC decoder may fail to seek in a damaged file)
DECODE_BLOCK_SAMPLES = 1 << 22
MAX_DECODE_SECONDS = 2 * 3600.0  # load_audio's default max_seconds: longer audio fails (bounds memory)
SAMPLE_RATE_RANGE = (1000, 768_000)  # Hz; outside it a header is damaged (and resampling 1 Hz audio to
                                     # 22,050 Hz would multiply its samples 22,050 times)
WAV_PLACEHOLDER_SIZE = 0x7FFFF000  # RIFF data sizes from here up mean "unknown" (streaming writers)
WAV_MAX_CHUNKS = 64  # chunks looked at before a WAV's data chunk (real files have a handful)


def _too_long(path: Path, max_seconds: float) -> AudioError:
    return AudioError(f"{path}: too long (more than {max_seconds:g} s of audio, the most decoded)")


def _check_sample_rate(path: Path, sr: int) -> None:
    if not SAMPLE_RATE_RANGE[0] <= sr <= SAMPLE_RATE_RANGE[1]:
        raise AudioError(f"{path}: implausible sample rate {sr} Hz in its header (a damaged file)")


def join_blocks(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Mono float32 blocks joined into one array (empty when there are none)."""
    parts = list(blocks)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _mono_blocks(blocks: Iterable[np.ndarray], sr: int, path: Path, max_seconds: float) -> Iterator[np.ndarray]:
    """(frames, channels) blocks -> mono float32 blocks, failing as soon as more than `max_seconds` are decoded."""
    frames = 0
    for block in blocks:
        frames += len(block)
        if frames > max_seconds * sr:
            raise _too_long(path, max_seconds)
        yield _mono(block)


def _mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) float32 -> (frames,): the mean of the channels, bit for bit block.mean(axis=1)
    (which sums a row's channels in order from +0.0, then divides by their number), for mono and stereo
    without NumPy's per-row reduction loop: 2 ms instead of 26 ms for a 30 s stereo clip at 44.1 kHz,
    40% of its decoding time."""
    if block.shape[1] > 2:
        return block.mean(axis=1)
    mono = np.add(block[:, 0], 0.0, dtype=np.float32)  # + 0.0: a -0.0 sample gives +0.0, as the mean's sum does
    if block.shape[1] == 2:
        mono += block[:, 1]
        mono /= 2
    return mono


def _wav_declared_frames(path: Path, frames: int) -> int:
    """The frames a RIFF/RF64 WAV's data chunk declares when it claims more bytes than the file holds,
    else `frames`. libsndfile silently reads what is there and reports that as the length, so a cut
    download or a lying header would pass as complete. Scaled from bytes: right for any WAV codec."""
    with open(path, "rb") as fh:
        riff = fh.read(12)
        if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RF64") or riff[8:] != b"WAVE":
            return frames
        ds64_size = 0  # RF64: the data size, from the ds64 chunk (its data chunk says 0xFFFFFFFF)
        for _ in range(WAV_MAX_CHUNKS):
            head = fh.read(8)
            if len(head) < 8:
                break
            chunk, size = head[:4], int.from_bytes(head[4:], "little")
            if chunk == b"data":
                size = ds64_size if riff[:4] == b"RF64" and size == 0xFFFFFFFF else size
                if not size or (riff[:4] == b"RIFF" and size >= WAV_PLACEHOLDER_SIZE):
                    return frames  # length unknown to the writer
                held = os.fstat(fh.fileno()).st_size - fh.tell()
                return int(frames * size / held) if 0 < held < size else frames
            body = fh.read(min(size, 16)) if chunk == b"ds64" else b""
            if len(body) == 16:
                ds64_size = int.from_bytes(body[8:], "little")  # after the 8-byte RIFF size
            fh.seek(size + (size & 1) - len(body), os.SEEK_CUR)  # chunks are padded to even sizes
    return frames


def _soundfile_blocks(f, frames: int) -> Iterable[np.ndarray]:
    """(frames, channels) float32 blocks of an open soundfile.SoundFile, up to the first short one (the
    end, or where libsndfile gave up on damaged data, as a single read of the whole file would)."""
    while True:
        block = f.read(frames, dtype="float32", always_2d=True)
        if len(block):
            yield block
        if len(block) < frames:
            return


def _soundfile_source(path: Path, max_seconds: float) -> Iterator:
    """libsndfile's decoding of `path`, as it goes: (sample rate, frames the header declares) first, then
    mono float32 blocks (a read of DECODE_BLOCK_SAMPLES each, mixed down). Read in blocks because a header
    may declare any length (a damaged MP3's Xing frame count: terabytes), and soundfile would allocate all
    of it before reading."""
    import soundfile as sf
    try:
        with sf.SoundFile(str(path)) as f:
            sr, declared = f.samplerate, _wav_declared_frames(path, f.frames)
            _check_sample_rate(path, sr)
            yield sr, declared
            yield from _mono_blocks(_soundfile_blocks(f, max(1, DECODE_BLOCK_SAMPLES // f.channels)), sr, path,
                                    max_seconds)
    except sf.LibsndfileError as e:
        # libsndfile reports data it does not recognise as "File does not exist or is not a regular file"
        detail = "not audio, or a corrupt file" if "regular file" in e.error_string else f"libsndfile: {e.error_string}"
        raise AudioError(f"{path}: not decodable audio ({detail})") from None


def _fallback_source(path: Path, max_seconds: float) -> Iterator:
    """_decode_fallback as a source like _soundfile_source: (sample rate, frames), then the whole mono signal."""
    wave, sr, frames = _decode_fallback(path, max_seconds)
    yield sr, frames
    if len(wave):
        yield wave


def _decode_fallback(path: Path, max_seconds: float) -> tuple[np.ndarray, int, int]:
    """Formats libsndfile does not read (m4a, aac, wma, ...) through audioread, when it has a backend:
    (mono float32 samples, sample rate, frames decoded); at most `max_seconds` are read."""
    try:
        import audioread
        with audioread.audio_open(str(path)) as f:
            sr, channels = f.samplerate, f.channels
            _check_sample_rate(path, sr)
            raw, limit = bytearray(), max_seconds * sr * channels * 2  # 16-bit samples
            for buf in f:  # buffers need not hold whole frames: joined before they are split
                raw += buf
                if len(raw) > limit:
                    raise _too_long(path, max_seconds)
    except AudioError:
        raise
    except Exception as e:  # audioread raises backend-specific types; all mean "cannot decode"
        detail = f" ({type(e).__name__}: {e})" if str(e) else ""
        raise AudioError(f"{path}: no decoder for {path.suffix or 'extension-less'} files: convert it to "
                         f"wav/flac/ogg/mp3, or install ffmpeg so audioread can read it{detail}") from None
    data = np.frombuffer(raw, dtype="<i2", count=len(raw) // (2 * channels) * channels)
    wave = _mono((data.astype(np.float32) / 32768.0).reshape(-1, channels))  # max_seconds at most (the read)
    return wave, sr, len(wave)


def load_audio(path, sample_rate: int, min_seconds: float = 0.0, check_truncated: bool = True,
               max_seconds: float = MAX_DECODE_SECONDS) -> np.ndarray:
    """Decode a file to mono float32 at `sample_rate` Hz.

    Raises AudioError (naming the file and the reason) for a missing or empty file, undecodable
    data, an implausible sample rate, a file whose decoded length falls far short of the length its
    header declares (truncated; for WAV also a data chunk larger than the file), NaN/inf samples,
    audio shorter than `min_seconds`, or longer than `max_seconds` (decoding stops there). Audio is
    decoded and mixed to mono in blocks, so memory follows the audio in the file, never its header.
    The concatenation of `audio_blocks`, which gives the same samples block by block.
    """
    return join_blocks(audio_blocks(path, sample_rate, min_seconds, check_truncated, max_seconds))


def audio_blocks(path, sample_rate: int, min_seconds: float = 0.0, check_truncated: bool = True,
                 max_seconds: float = MAX_DECODE_SECONDS) -> Iterator[np.ndarray]:
    """load_audio as it decodes: mono float32 blocks at `sample_rate` Hz whose concatenation is load_audio's
    array bit for bit (each read of DECODE_BLOCK_SAMPLES is mixed down and resampled by one soxr stream,
    which gives the samples of soxr's one-shot resampling), so that a song of any length takes the memory
    of one block. The same AudioErrors in the same order of precedence: 'too long' where decoding stops,
    the others once the file is decoded, after the blocks before them (which the caller then discards).
    """
    import soxr
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    source = (_soundfile_source if path.suffix.lower() in SOUNDFILE_EXTENSIONS else _fallback_source)(path, max_seconds)
    sr, declared = next(source)
    stream = soxr.ResampleStream(sr, sample_rate, 1, dtype="float32") if sr != sample_rate else None
    decoded, produced, finite = 0, 0, True
    for block in source:
        decoded += len(block)
        finite = finite and bool(np.isfinite(block).all())  # a NaN or inf in any channel leaves one in the mix
        if finite:  # after a NaN or inf the rest is only decoded, for the checks that take precedence
            out = block if stream is None else stream.resample_chunk(block)
            produced += len(out)
            if len(out):
                yield out
    if decoded == 0:
        raise AudioError(f"{path}: no audio decoded")
    if check_truncated and declared > 0 and decoded < TRUNCATED_RATIO * declared and declared - decoded > sr:
        raise AudioError(f"{path}: truncated (decoded {decoded / sr:.1f} s of the {declared / sr:.1f} s "
                         f"its header declares)")
    if not finite:
        raise AudioError(f"{path}: decoded samples contain NaN or inf")
    if stream is not None:
        out = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        produced += len(out)
        if len(out):
            yield out
    if produced / sample_rate < min_seconds:
        raise AudioError(f"{path}: too short ({produced / sample_rate:.2f} s < {min_seconds:g} s minimum)")


def fit_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """Pad with silence at the end, or keep the middle `samples` of a longer signal."""
    if len(wave) >= samples:
        start = (len(wave) - samples) // 2
        return wave[start:start + samples]
    return np.pad(wave, (0, samples - len(wave)))


@contextlib.contextmanager
def quiet_native_stderr():
    """Send what C libraries write straight to file descriptor 2 (libmpg123's 'Warning: Xing stream
    size off', 'Note: Trying to resync...') to /dev/null, while Python's own stderr (our error lines,
    the progress bar, tracebacks) keeps going to the real stderr."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured): nothing to do
        yield
        return
    old = sys.stderr
    old.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    sys.stderr = open(saved, "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                      errors="backslashreplace")
    os.dup2(devnull, fd)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)
        sys.stderr.close()
        sys.stderr = old



# --------------------------------------------------------------------------------------------------
# Log-mel spectrogram

AMIN = 1e-10  # power floor before log10: silence maps to -100 dB


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: Optional[float]) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney-normalised mel filters: librosa.filters.mel at its defaults (Slaney mel
    scale and norm, float32), bit for bit (tests/test_speed.py checks it against librosa), in NumPy: librosa's
    first call (its lazy imports and numba) cost every process that computes features 1.4 s and 60 MB."""
    f_max = float(sample_rate) / 2 if f_max is None else f_max
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))  # the filters' edges, Hz
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)), dtype=np.float32)
    for i in range(n_mels):  # each filter: its rising and falling slopes, intersected with zero
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]  # Slaney: equal area
    return weights


# Slaney's mel scale, as librosa computes it (hz_to_mel, mel_to_hz with htk=False): linear below 1 kHz
MEL_STEP_HZ, LOG_HZ, LOG_STEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
LOG_MEL = LOG_HZ / MEL_STEP_HZ  # where the logarithmic part starts, in mels


def _hz_to_mel(hz: float) -> float:
    mel = np.asanyarray(hz) / MEL_STEP_HZ
    return LOG_MEL + np.log(hz / LOG_HZ) / LOG_STEP if hz >= LOG_HZ else mel


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    hz = MEL_STEP_HZ * mels
    log = mels >= LOG_MEL
    hz[log] = LOG_HZ * np.exp(LOG_STEP * (mels[log] - LOG_MEL))
    return hz


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic


@functools.lru_cache(maxsize=8)
def _sparse_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: Optional[float]):
    """mel_filterbank as a sparse matrix: each triangular filter spans a few FFT bins (about 2,000
    non-zeros of 131,000 at the defaults), so applying it sparsely is ~10x less work than densely."""
    import scipy.sparse
    return scipy.sparse.csr_array(mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max))


LOG_MEL_BLOCK_FRAMES = 256  # frames transformed at a time: a block's spectrum (1 MB) stays in cache


def log_mel(wave: np.ndarray, audio: AudioConfig) -> np.ndarray:
    """Log-mel power spectrogram in dB (ref 1.0), float32, shape (n_mels, 1 + len(wave) // hop).

    Centred STFT with zero padding and a periodic Hann window, |X|^2, mel filters, 10 log10. It
    equals `librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0, top_db=None)`;
    tests check that. This is the only feature function: training, evaluation and prediction use it
    (`log_mel_blocks` computes it for a signal that comes in blocks).
    Signals are transformed in blocks of frames (bounded memory for songs of many minutes, and
    cache-sized working sets); scipy.fft is used for the FFT (several times faster than numpy.fft on
    float32) and the mel filters are applied as a sparse matrix. See bench.py for the timings.
    """
    padded = np.pad(np.asarray(wave, dtype=np.float32), audio.n_fft // 2)
    return _frames_log_mel(np.lib.stride_tricks.sliding_window_view(padded, audio.n_fft)[::audio.hop_length], audio)


def log_mel_blocks(blocks: Iterable[np.ndarray], audio: AudioConfig) -> Iterator[np.ndarray]:
    """log_mel of a signal that comes in blocks (audio_blocks): (n_mels, t) float32 blocks whose
    concatenation is log_mel(np.concatenate(blocks)) bit for bit (each frame is the same samples through
    the same operations), holding one block and the n_fft samples of the frame it ends in."""
    n_fft, hop = audio.n_fft, audio.hop_length
    pending = np.zeros(n_fft // 2, dtype=np.float32)  # from the next frame's start: the centring's zeros first
    for block in itertools.chain(blocks, [np.zeros(n_fft // 2, dtype=np.float32)]):  # and the end's
        pending = np.concatenate([pending, np.asarray(block, dtype=np.float32)])
        if len(pending) >= n_fft:
            frames = np.lib.stride_tricks.sliding_window_view(pending, n_fft)[::hop]
            yield _frames_log_mel(frames, audio)
            pending = pending[len(frames) * hop:]


def _frames_log_mel(frames: np.ndarray, audio: AudioConfig) -> np.ndarray:
    """(T, n_fft) frames of the padded signal (a view) -> (n_mels, T) log-mel dB, LOG_MEL_BLOCK_FRAMES at a time."""
    import scipy.fft
    n_fft = audio.n_fft
    fbank = _sparse_filterbank(audio.sample_rate, n_fft, audio.n_mels, audio.f_min, audio.f_max)
    out = np.empty((audio.n_mels, len(frames)), dtype=np.float32)
    for t0 in range(0, len(frames), LOG_MEL_BLOCK_FRAMES):
        block = frames[t0:t0 + LOG_MEL_BLOCK_FRAMES] * _hann(n_fft)  # (t, n_fft), a copy
        spectrum = scipy.fft.rfft(block, axis=-1, overwrite_x=True)  # (t, n_fft // 2 + 1)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        out[:, t0:t0 + len(block)] = fbank @ power.T  # (n_mels, t)
    return 10.0 * np.log10(np.maximum(out, AMIN), out=out)


def clip_from_wave(wave: np.ndarray, audio: AudioConfig) -> tuple[np.ndarray, int]:
    """The cached clip of a decoded signal: float16 log-mel (n_mels, clip_frames) of its middle
    `clip_seconds` (zero-padded when shorter), and the number of frames of real audio in it."""
    valid = min(1 + len(wave) // audio.hop_length, audio.clip_frames)
    wave = fit_length(wave, int(round(audio.clip_seconds * audio.sample_rate)))
    return log_mel(wave, audio).astype(np.float16), valid


