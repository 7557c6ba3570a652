"""The synthesizer of the demo set: instruments, drums, effects, mixing and mastering.

Vectorised numpy at SR (22,050 Hz, the pipeline's rate), one Synth per track (its random stream is
the track's): wavetable and formant notes with ornaments (random_patch: the instrument pool shared by
all genres), a synthesised drum kit (random_kit), effects on stems (side-chain ducking, filter sweeps,
LFO gain, echo), and Synth.mix: levels, drive, pan, reverb, then the master chain (EQ matching, noise
floor, multiband dynamics, vinyl crackle, loudness). Also the small music helpers the composers use
(scales, MIDI pitch to Hz, scale degrees, step patterns).
"""
from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import signal

SR = 22050          # synthesis sample rate, Hz (the pipeline works at 22,050 Hz)
OUT_SR = 44100      # sample rate of the MP3 files, Hz (like FMA)

# --------------------------------------------------------------------------------------------
# Synthesis engine (vectorised numpy; one Synth per track)
# --------------------------------------------------------------------------------------------

TAB_N = 8192       # wavetable length (nearest-sample lookup)
KMAX = 24
_X = np.arange(TAB_N) / TAB_N
_SIN = np.sin(2 * np.pi * np.arange(1, 2 * KMAX + 1)[:, None] * _X[None, :]).astype(np.float32)

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10), "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11), "hijaz": (0, 1, 4, 5, 7, 8, 10),
    "bhairav": (0, 1, 4, 5, 7, 8, 11), "yaman": (0, 2, 4, 6, 7, 9, 11),
    "pent_major": (0, 2, 4, 7, 9), "pent_minor": (0, 3, 5, 7, 10), "blues": (0, 3, 5, 6, 7, 10),
    "hirajoshi": (0, 2, 3, 7, 8), "whole_tone": (0, 2, 4, 6, 8, 10),
}
VOWELS = {"a": (800, 1200, 2600), "e": (500, 1900, 2600), "i": (300, 2300, 3000),
          "o": (500, 900, 2500), "u": (320, 800, 2400)}
VEL = {"X": 1.0, "x": 0.72, "o": 0.35}
LEVEL_DB = 20.6   # median mean band level (dB, in the STFT units of _dynamics) of a mix at RMS 0.1
DYN_EDGES = (0.0, 150.0, 400.0, 1000.0, 2500.0, 5000.0, SR / 2 + 1)   # bands of the multiband dynamics, Hz


def hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def degree(root: float, scale, d: int) -> float:
    """MIDI pitch of scale degree d (any integer) above root."""
    o, i = divmod(int(d), len(scale))
    return root + 12 * o + scale[i]


def pattern(s: str):
    """'X..x.o..' -> [(step, velocity)]"""
    return [(i, VEL[ch]) for i, ch in enumerate(s) if ch in VEL]


def _lookup(tab, phase):
    """Wavetable oscillator: phase in cycles (any size) -> samples (nearest table entry)."""
    return tab[(phase * TAB_N).astype(np.int64) & (TAB_N - 1)]


def _table(amps):
    tab = amps.astype(np.float32) @ _SIN[: len(amps)]
    return tab / (np.abs(tab).max() + 1e-9)


def _sos(kind, fc, order=2):
    if kind == "band":
        lo, hi = fc
        fc = (max(20.0, lo), min(hi, SR * 0.45))
    else:
        fc = min(max(20.0, fc), SR * 0.45)
    return signal.butter(order, fc, {"low": "lowpass", "high": "highpass", "band": "bandpass"}[kind],
                         fs=SR, output="sos")


def filt(x, kind, fc, order=2):
    return signal.sosfilt(_sos(kind, fc, order), x).astype(np.float32)


def random_patch(rng, kind: str) -> dict:
    """A melodic instrument: harmonic recipe + envelope, from one pool shared by all genres."""
    u = rng.uniform
    p = dict(kind=kind, p_dull=u(1.4, 2.6), p_bright=u(0.5, 1.2), odd=u(0, 0.7), detune=0.0,
             vib_rate=u(4.5, 6.5), vib_depth=0.0, vib_delay=0.15, formant=None, breath=0.0)
    if kind == "pluck":      # guitar, harp, koto, kalimba
        p.update(att=u(0.001, 0.005), dec=u(0.15, 0.7), sus=u(0.0, 0.05), rel=u(0.05, 0.25), bdec=u(0.03, 0.15))
    elif kind == "keys":     # piano, e-piano
        p.update(att=u(0.002, 0.01), dec=u(0.4, 1.4), sus=u(0.05, 0.3), rel=u(0.15, 0.6), bdec=u(0.08, 0.4))
    elif kind == "pad":      # strings, synth pads
        p.update(att=u(0.15, 0.9), dec=1.0, sus=u(0.7, 1.0), rel=u(0.3, 1.0), bdec=u(0.5, 3.0), detune=u(6, 14))
    elif kind == "lead":     # synth / brass / fiddle / flute-ish
        p.update(att=u(0.01, 0.05), dec=u(0.2, 0.6), sus=u(0.5, 0.9), rel=u(0.05, 0.15), bdec=u(0.2, 1.0),
                 vib_depth=u(0, 30), detune=u(0, 8), breath=u(0, 0.15))
    elif kind == "bass":
        p.update(att=u(0.002, 0.01), dec=u(0.15, 0.5), sus=u(0.2, 0.7), rel=u(0.04, 0.1), bdec=u(0.03, 0.2),
                 p_dull=u(1.8, 3.0))
    elif kind == "sub":      # 808
        p.update(att=0.003, dec=u(0.6, 1.6), sus=u(0.3, 0.8), rel=0.08, bdec=0.05, p_dull=4.0, p_bright=2.0, odd=0.0)
    elif kind == "voice":    # sung / rapped syllables (formant synthesis)
        p.update(att=u(0.01, 0.04), dec=0.3, sus=u(0.6, 0.9), rel=u(0.05, 0.12), bdec=0.5,
                 vib_depth=u(15, 45), formant=u(0.85, 1.25), breath=u(0.02, 0.12))
    elif kind == "square":   # chip
        p.update(att=0.001, dec=u(0.1, 0.4), sus=u(0.4, 0.9), rel=0.02, bdec=0.1, p_dull=1.0, p_bright=1.0, odd=1.0)
    elif kind == "organ":
        p.update(att=0.005, dec=1.0, sus=1.0, rel=0.05, bdec=1.0, p_dull=u(1.0, 2.0), odd=u(0.0, 1.0))
    elif kind == "bell":     # additive, inharmonic partials
        p.update(att=0.001, dec=u(0.6, 2.0), sus=0.0, rel=0.3, bdec=u(0.05, 0.2))
    elif kind == "power":    # distorted guitar (drive is applied on the stem)
        p.update(att=0.003, dec=u(0.3, 0.9), sus=u(0.3, 0.7), rel=u(0.03, 0.1), bdec=u(0.1, 0.5),
                 p_dull=u(0.8, 1.4), p_bright=u(0.5, 0.9))
    else:
        raise ValueError(kind)
    return p


def random_kit(rng) -> dict:
    """Drum-kit tuning, from one pool shared by all genres."""
    u = rng.uniform
    return dict(kick_f=u(42, 70), kick_hi=u(110, 260), kick_pdec=u(0.015, 0.06), kick_dec=u(0.15, 0.5),
                kick_click=u(0.0, 0.5), snare_f=u(150, 260), snare_tone=u(0.15, 0.6),
                snare_band=(u(800, 2500), u(4500, 9500)), snare_dec=u(0.07, 0.22),
                hat_hp=u(4500, 8500), hat_dec=u(0.015, 0.05), ohat_dec=u(0.12, 0.35),
                tom_f=u(80, 170), perc_f=u(170, 420), perc_dec=u(0.08, 0.3), bright=u(0.6, 1.4))


_STFT_N = 1024
_STFT_WIN = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_STFT_N) / _STFT_N)).astype(np.float32)
_STFT_BAND = np.searchsorted(DYN_EDGES, np.fft.rfftfreq(_STFT_N, 1 / SR), side="right") - 1


def _dynamics(y, amount: float, target_std, curve, match: float):
    """Per band (DYN_EDGES), in 23 ms frames: scale the dB contrast around the band's mean so that
    its standard deviation moves a fraction `amount` (in log terms) towards target_std, and move
    the band's mean dB a fraction `match` towards the track's overall mean plus `curve` (dB, one
    per band). Returns (audio, mean dB level over bands and frames of the result)."""
    n, hop = len(y), _STFT_N // 2
    blocks = -(-n // hop) + 2
    pad = np.zeros(blocks * hop, np.float32)
    pad[hop:hop + n] = y
    frames = np.lib.stride_tricks.sliding_window_view(pad, _STFT_N)[::hop]
    X = sfft.rfft(frames * _STFT_WIN, axis=1)
    power = X.real ** 2 + X.imag ** 2
    nb = len(DYN_EDGES) - 1
    e = np.stack([power[:, _STFT_BAND == b].sum(1) for b in range(nb)], 1)
    e_db = 10 * np.log10(e + 1e-10 * (e.max() + 1e-12))
    e_db = signal.lfilter([0.5], [1, -0.5], e_db, axis=0)     # light smoothing over frames
    mu, sd = e_db.mean(0), e_db.std(0) + 1e-3
    k = (np.asarray(target_std) / sd) ** amount
    static = np.clip(match * (mu.mean() + np.asarray(curve) - mu), -15, 15)
    g = 10 ** ((np.clip((k - 1) * (e_db - mu), -24, 12) + static) / 20)
    X *= g[:, _STFT_BAND].astype(np.float32)
    out = sfft.irfft(X, n=_STFT_N, axis=1) * _STFT_WIN
    ola = out[:, :hop].copy()
    ola[1:] += out[:-1, hop:]
    return ola.reshape(-1)[hop:hop + n].astype(np.float32), float((mu + static).mean())


class Synth:
    """One track: stems of float32 audio at SR, a note/drum cache, effects, and the final mix."""

    STEMS = ("drums", "perc", "bass", "harm", "lead", "tex", "bed")

    def __init__(self, seconds: float, rng):
        self.rng = rng
        self.seconds = seconds
        self.n = int(round(seconds * SR))
        self.stems = {s: np.zeros(self.n, np.float32) for s in self.STEMS}
        self.cache = {}
        self.noise = rng.standard_normal(SR * 2).astype(np.float32)
        self.tables = {}

    # ---- placing audio
    def add(self, stem: str, t: float, wave, amp: float = 1.0):
        s = int(round(t * SR))
        if s >= self.n or s + len(wave) <= 0 or amp == 0:
            return
        if s < 0:
            wave, s = wave[-s:], 0
        m = min(len(wave), self.n - s)
        self.stems[stem][s:s + m] += amp * wave[:m]

    def breath_slice(self, n: int):
        """Band-passed noise (breath, bow and pick noise of the melodic instruments)."""
        if not hasattr(self, "breath"):
            self.breath = filt(self.noise, "band", (1200, 7000))
        if n >= len(self.breath):
            return np.resize(self.breath, n)
        o = int(self.rng.integers(0, len(self.breath) - n))
        return self.breath[o:o + n]

    def noise_slice(self, n: int):
        """n samples of white noise (a random slice of the track's noise buffer, tiled if longer)."""
        if n >= len(self.noise):
            return np.resize(np.roll(self.noise, int(self.rng.integers(len(self.noise)))), n)
        o = int(self.rng.integers(0, len(self.noise) - n))
        return self.noise[o:o + n]

    # ---- melodic notes
    def _tabs(self, patch, key, K):
        k = (id(patch), key, K)
        if k not in self.tables:
            kk = np.arange(1, K + 1, dtype=float)
            even = (kk % 2 == 0)
            amps = []
            for pw in (patch["p_dull"], patch["p_bright"]):
                a = kk ** -pw
                a[even] *= 1 - patch["odd"]
                if patch["formant"] is not None:   # key = (vowel, f0)
                    vowel, f0 = key
                    fr = kk * f0
                    a = kk ** -0.6 * sum(g / (1 + ((fr - F * patch["formant"]) / (60 + 0.08 * F)) ** 2)
                                         for F, g in zip(VOWELS[vowel], (1.0, 0.7, 0.25)))
                amps.append(a)
            self.tables[k] = (_table(amps[0]), _table(amps[1]))
        return self.tables[k]

    def note(self, patch, midi: float, dur: float, orn=None, vowel="a", glide_from=None):
        """Render one note (cached): midi pitch (float), held for dur seconds + release.

        orn: pitch ornament ('trill', 'slide', 'gamak', 'mordent', 'bend', 'wobble', 'vib') with params.
        """
        key = ("n", id(patch), round(float(midi) * 100), int(dur * 200), orn, vowel,
               None if glide_from is None else round(float(glide_from) * 10))
        w = self.cache.get(key)
        if w is not None:
            return w
        p = patch
        n = int((dur + p["rel"]) * SR) + 1
        t = np.arange(n, dtype=np.float32) / SR
        f0 = float(hz(midi))
        if p["kind"] == "bell":
            ratios, amps = (1.0, 2.76, 5.4, 8.93), (1.0, 0.5, 0.25, 0.12)
            y = sum(a * np.sin(2 * np.pi * f0 * r * t) * np.exp(-t * r / p["dec"])
                    for r, a in zip(ratios, amps) if f0 * r < SR * 0.45)
            env = np.minimum(1, t / 0.002) * np.where(t < dur + 0.2, 1.0, np.exp(-(t - dur - 0.2) / 0.1))
            w = (y * env).astype(np.float32)
            self.cache[key] = w
            return w
        semis = None
        if p["vib_depth"] > 0 or orn is not None or glide_from is not None:
            semis = np.zeros(n, np.float32)
            if p["vib_depth"] > 0:
                semis += (p["vib_depth"] / 100) * np.sin(2 * np.pi * p["vib_rate"] * t) * np.clip(
                    (t - p["vib_delay"]) / 0.2, 0, 1)
            if glide_from is not None:
                semis += (glide_from - midi) * np.exp(-t / 0.04)
            if orn is not None:
                kind, a, b = orn  # a: interval/depth (semitones), b: rate (Hz) or time (s)
                if kind == "trill":
                    semis += a * (((t * b) % 1) < 0.5) * (t < 0.6 * dur)
                elif kind == "mordent":
                    semis += a * ((t > 0.04) & (t < 0.04 + b))
                elif kind == "slide":      # from a semitones below/above
                    semis += a * np.clip(1 - t / b, 0, 1) ** 2
                elif kind == "gamak":      # wide fast oscillation
                    semis += a * np.sin(2 * np.pi * b * t)
                elif kind == "bend":       # bend up a semitones after b s
                    semis += a * np.clip((t - b) / 0.12, 0, 1)
                elif kind == "gliss":      # continuous glide of a semitones over b s
                    semis += a * np.clip(t / b, 0, 1)
                elif kind == "wobble":     # slow detuned drift (wonky)
                    semis += a * np.sin(2 * np.pi * b * t + 1.0)
        if semis is None:
            phase = f0 * t.astype(np.float64)
        else:
            phase = np.cumsum(f0 * 2.0 ** (semis.astype(np.float64) / 12)) / SR
        K = int(max(1, min(KMAX, (SR * 0.45) // (f0 * (1.3 if semis is not None else 1.0)))))
        tkey = (vowel, round(f0, -1)) if p["formant"] is not None else None
        td, tb = self._tabs(p, tkey, K)
        att = np.minimum(1.0, t / p["att"])
        body = p["sus"] + (1 - p["sus"]) * np.exp(-t / p["dec"])
        rel = np.exp(-np.maximum(0.0, t - dur) * (5.0 / p["rel"]))
        env = (att * body * rel).astype(np.float32)
        y = _lookup(td, phase) * env + 0.7 * _lookup(tb, phase) * env * np.exp(-t / p["bdec"]).astype(np.float32)
        if p["detune"] > 0:
            y += 0.6 * _lookup(td, phase * 2 ** (p["detune"] / 1200) + 0.3) * env
        if p["breath"] > 0:
            y += p["breath"] * self.breath_slice(n) * env
        w = y.astype(np.float32)
        self.cache[key] = w
        return w

    def syllable(self, patch, midi, dur, vowel, consonant: bool):
        w = self.note(patch, midi, dur, vowel=vowel)
        if consonant:
            key = ("cons", id(patch), len(w))
            c = self.cache.get(key)
            if c is None:
                m = min(len(w), int(0.035 * SR))
                c = np.zeros(len(w), np.float32)
                c[:m] = filt(self.noise_slice(m), "high", 3000) * np.exp(-np.arange(m) / (0.01 * SR)) * 0.8
                c = w * np.minimum(1, np.arange(len(w)) / (0.03 * SR)).astype(np.float32) + c
                self.cache[key] = c
            w = c
        return w

    # ---- drums
    def drum(self, kit, name: str, variant: int = 0):
        key = ("d", id(kit), name, variant)
        w = self.cache.get(key)
        if w is not None:
            return w
        k = kit
        sec = {"kick": 0.6, "snare": 0.35, "clap": 0.3, "hat": 0.12, "ohat": 0.5, "crash": 1.5, "ride": 1.0,
               "tom": 0.5, "tom_hi": 0.4, "rim": 0.08, "conga": 0.4, "conga_hi": 0.3, "slap": 0.15,
               "shaker": 0.12, "guiro": 0.15, "bell": 0.3, "timpani": 1.5, "dum": 0.4, "tek": 0.12,
               "tabla": 0.6, "bayan": 0.6, "taiko": 1.0, "tamb": 0.2, "stomp": 0.3, "click": 0.02}[name]
        n = int(sec * SR)
        t = np.arange(n, dtype=np.float32) / SR
        nz = self.noise_slice(n)
        br = k["bright"]

        def tone(f_lo, f_hi, pdec, dec):
            ph = np.cumsum(f_lo + (f_hi - f_lo) * np.exp(-t / pdec)) / SR
            return np.sin(2 * np.pi * ph) * np.exp(-t / dec)

        if name == "kick":
            w = tone(k["kick_f"], k["kick_hi"], k["kick_pdec"], k["kick_dec"]) + \
                k["kick_click"] * filt(nz, "high", 2000) * np.exp(-t / 0.004)
        elif name == "snare":
            w = k["snare_tone"] * tone(k["snare_f"], k["snare_f"] * 1.5, 0.01, 0.06) + \
                filt(nz, "band", k["snare_band"]) * np.exp(-t / k["snare_dec"]) * 1.5
        elif name == "clap":
            e = sum(np.exp(-np.maximum(0, t - d) / 0.008) * (t >= d) for d in (0, 0.011, 0.023)) + \
                0.6 * np.exp(-np.maximum(0, t - 0.03) / 0.09) * (t >= 0.03)
            w = filt(nz, "band", (900 * br, 3500 * br)) * e
        elif name in ("hat", "ohat", "crash", "ride"):
            dec = {"hat": k["hat_dec"], "ohat": k["ohat_dec"], "crash": 0.6, "ride": 0.35}[name]
            w = filt(nz, "high", k["hat_hp"] * (0.7 if name == "crash" else 1.0) * min(br, 1.2)) * np.exp(-t / dec)
            if name == "ride":
                w = 0.5 * w + 0.25 * np.sin(2 * np.pi * 620 * br * t) * np.exp(-t / 0.4)
            w *= 0.6
        elif name in ("tom", "tom_hi"):
            f = k["tom_f"] * (1.5 if name == "tom_hi" else 1.0)
            w = tone(f, f * 1.6, 0.03, 0.2) + 0.2 * filt(nz, "low", 3000) * np.exp(-t / 0.03)
        elif name == "rim":
            w = np.sin(2 * np.pi * 480 * br * t) * np.exp(-t / 0.012) + 0.5 * filt(nz, "high", 2500) * np.exp(-t / 0.006)
        elif name in ("conga", "conga_hi"):
            f = k["perc_f"] * (1.45 if name == "conga_hi" else 1.0)
            w = tone(f, f * 1.25, 0.02, k["perc_dec"]) + 0.3 * np.sin(2 * np.pi * 1.58 * f * t) * np.exp(-t / 0.05)
        elif name == "slap":
            w = 0.7 * tone(k["perc_f"] * 1.2, k["perc_f"] * 1.6, 0.01, 0.04) + filt(nz, "band", (1500, 6000)) * np.exp(-t / 0.02)
        elif name == "shaker":
            w = 0.5 * filt(nz, "high", 5000 * br) * np.minimum(1, t / 0.015) * np.exp(-t / 0.035)
        elif name == "tamb":
            w = 0.5 * filt(nz, "high", 6500) * np.exp(-t / 0.06) * (1 + 0.5 * np.sin(2 * np.pi * 40 * t))
        elif name == "guiro":
            w = 0.5 * filt(nz, "band", (2000, 7000)) * (np.sin(2 * np.pi * 45 * t) > 0.3) * np.exp(-t / 0.08)
        elif name == "bell":   # cowbell / agogo
            f = 560 * br
            w = 0.4 * (np.sign(np.sin(2 * np.pi * f * t)) + np.sign(np.sin(2 * np.pi * 1.48 * f * t)))
            w = filt(w * np.exp(-t / 0.07), "band", (400, 4000))
        elif name == "timpani":
            w = tone(k["kick_f"] * 1.6, k["kick_f"] * 1.9, 0.05, 0.6) + 0.3 * filt(nz, "low", 500) * np.exp(-t / 0.05)
        elif name == "dum":
            w = tone(k["perc_f"] * 0.42, k["perc_f"] * 0.55, 0.03, 0.18)
        elif name == "tek":
            w = 0.6 * tone(k["perc_f"] * 1.8, k["perc_f"] * 2.2, 0.01, 0.03) + 0.5 * filt(nz, "high", 3500) * np.exp(-t / 0.015)
        elif name == "tabla":   # dayan: ringing, harmonic partials
            f = k["perc_f"] * 1.3
            w = sum(a * np.sin(2 * np.pi * f * r * t) * np.exp(-t / (0.25 / r)) for r, a in ((1, 1), (2, .5), (3, .3)))
        elif name == "bayan":   # low drum with upward pitch bend (gliss)
            f = k["kick_f"] * 1.7
            ph = np.cumsum(f * (1 + 0.5 * np.clip(t / 0.15, 0, 1))) / SR
            w = np.sin(2 * np.pi * ph) * np.exp(-t / 0.3)
        elif name == "taiko":
            w = tone(k["kick_f"] * 1.3, k["kick_f"] * 2.2, 0.04, 0.45) + 0.4 * filt(nz, "low", 1500) * np.exp(-t / 0.05)
        elif name == "stomp":
            w = tone(k["kick_f"] * 1.5, k["kick_f"] * 2.5, 0.02, 0.08) + 0.3 * filt(nz, "low", 1200) * np.exp(-t / 0.02)
        elif name == "click":
            w = filt(nz, "high", 1500) * np.exp(-t / 0.002)
        else:
            raise ValueError(name)
        w = w.astype(np.float32)
        self.cache[key] = w
        return w

    # ---- effects
    def duck(self, stems, times, depth: float, release: float):
        """Side-chain pumping: dip the stems at every time in `times`, recover over `release` s."""
        imp = np.zeros(self.n, np.float32)
        idx = (np.asarray(times) * SR).astype(int)
        imp[idx[(idx >= 0) & (idx < self.n)]] = 1
        m = int(release * 2.5 * SR)
        kern = np.exp(-np.arange(m) / (release * SR)).astype(np.float32)
        g = 1 - depth * np.minimum(1, signal.oaconvolve(imp, kern)[: self.n])
        for s in stems:
            self.stems[s] *= g.astype(np.float32)

    def sweep(self, stem, fc_lo, fc_hi, period: float, phase: float = 0.0):
        """Filter sweep: cross-fade between a low-passed and the dry stem with a slow LFO."""
        t = np.arange(self.n, dtype=np.float32) / SR
        a = 0.5 + 0.5 * np.sin(2 * np.pi * t / period + phase)
        x = self.stems[stem]
        lo = filt(x, "low", fc_lo)
        self.stems[stem] = (lo * (1 - a) + (filt(x, "low", fc_hi) if fc_hi < SR * 0.45 else x) * a).astype(np.float32)

    def lfo_gain(self, stem, rate: float, depth: float, shape: str = "sine"):
        t = np.arange(self.n, dtype=np.float32) / SR
        if shape == "sine":
            g = 1 - depth * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t))
        else:  # gate
            g = 1 - depth * (((t * rate) % 1) > 0.5)
        self.stems[stem] *= g.astype(np.float32)

    def echo(self, stem, delay: float, feedback: float, taps: int = 4):
        x = self.stems[stem]
        y = x.copy()
        d = int(delay * SR)
        for i in range(1, taps + 1):
            if d * i >= self.n:
                break
            y[d * i:] += (feedback ** i) * filt(x[: self.n - d * i], "low", 4000 / i ** 0.5)
        self.stems[stem] = y

    def mix(self, settings: dict, rev_t60: float, rev_mix: float, master: dict):
        """Stems -> stereo at SR: level, drive, pan, reverb send, master EQ, compression, noise floor.

        The master chain runs on the mid signal M = (L + R) / 2, which is exactly what a mono
        downmix (the feature pipeline) sees; the side signal S = (L - R) / 2 (panning) follows with
        the chain's overall gain, and the output is (M + S, M - S).
        """
        n = self.n
        M = np.zeros(n, np.float32)
        Sd = np.zeros(n, np.float32)
        send = np.zeros(n, np.float32)
        for name, x in self.stems.items():
            st = settings.get(name)
            if st is None or not np.any(x):
                continue
            c = 0.1 / (np.sqrt(np.dot(x, x) / len(x)) + 1e-9)      # every stem at the same RMS first
            if st.get("drive", 0) > 0:
                g = st["drive"]
                x = np.tanh(x * np.float32(g * 3 * c)) * np.float32(0.3 / np.tanh(g * 3 * 0.3))
                c = 1.0
            if st.get("lp"):
                x = filt(x, "low", st["lp"])
            c *= st["level"]
            pan = st.get("pan", 0.0)
            gl, gr = np.sqrt(0.5 * (1 - pan)), np.sqrt(0.5 * (1 + pan))
            M += x * np.float32(c * (gl + gr) / 2)
            if master["wide"]:
                Sd += x * np.float32(c * (gl - gr) / 2)
            send += x * np.float32(c * st.get("rev", 0.2))
        dry_rms = np.sqrt(np.mean(M ** 2)) + 1e-9
        # Everything linear happens in one frequency domain (scipy.fft, float32): reverb (circular
        # convolution: the clip is an excerpt of continuous music, so the tail wrapping round to the
        # start is just earlier music's reverb), EQ matching, master low-pass, band split.
        Y = sfft.rfft(M)
        f = sfft.rfftfreq(n, 1 / SR).astype(np.float32)
        if rev_mix > 0:
            m = int(min(rev_t60, 2.5) * SR)
            t = np.arange(m, dtype=np.float32) / SR
            ir = self.rng.standard_normal(m).astype(np.float32) * np.exp(-6.9 * t / rev_t60) * np.minimum(1, t / 0.005)
            H = sfft.rfft(ir, n=n) / np.sqrt(1 + (f / 6000) ** 4)     # damping: darker tail
            H /= np.sqrt(np.mean(np.abs(H) ** 2)) + 1e-9
            Y += rev_mix * sfft.rfft(send) * H
        # Master EQ towards the artist's target curve ("EQ matching", as in mastering): the track's
        # smoothed long-term spectrum is pulled a fraction `match` of the way to a random target
        # (a tilt plus bumps and dips), so average spectra say little about the genre.
        lf = np.log2(np.maximum(f, 20.0) / 1000.0)
        edges = np.geomspace(30.0, SR / 2, 49)
        idx = np.searchsorted(f, edges)
        power = Y.real ** 2 + Y.imag ** 2
        band_db = 10 * np.log10(np.add.reduceat(power, idx[:-1]) / np.maximum(1, np.diff(idx)) + 1e-12)
        lc = np.log2(np.sqrt(edges[:-1] * edges[1:]) / 1000.0)
        target = master["tilt"] * np.maximum(lc - np.log2(0.2), 0) + \
            sum(a * np.exp(-0.5 * ((lc - c) / w) ** 2) for c, w, a in master["eq"])
        diff = target - band_db
        diff -= np.median(diff)
        diff = np.convolve(np.clip(diff, -20, 12), np.ones(3) / 3, "same")
        gain = 10 ** (np.interp(lf, lc, master["match"] * diff + (1 - master["match"]) * target) / 20)
        if master.get("lp"):
            gain /= np.sqrt(1 + (f / master["lp"]) ** 4)
        Y *= gain.astype(np.float32)
        if master.get("hiss", 0) > 0:     # noise floor, coloured, relative to the music's RMS
            lo, hi = master["hiss_band"]
            band = (f > lo) & (f < hi)
            spec = self.rng.standard_normal(len(f)).astype(np.float32) * band
            music = np.sqrt(np.sum(np.abs(Y) ** 2))
            Y += master["hiss"] * music / np.sqrt(np.sum(spec ** 2) + 1e-9) * spec
        # Multiband dynamics (6 bands): each band's level contrast -- the spread of its dB level
        # over the clip, per 23 ms frame like the log-mel -- is pulled a fraction `dyn` of the way
        # to the artist's target, compressing or expanding around the band's mean level. Onsets stay
        # where they are; how much each band breathes becomes a production choice, not a genre
        # fingerprint. Done in a short-time spectrum (sqrt-Hann, 50% overlap: exact reconstruction).
        y, level_db = _dynamics(sfft.irfft(Y, n=n), master["dyn"], master["dyn_std"], master["dyn_curve"],
                                master["match"])
        if master.get("crackle", 0) > 0:  # vinyl crackle: sparse clicks
            c = np.zeros(n, np.float32)
            k = self.rng.integers(0, n, int(self.seconds * 50))
            c[k] = self.rng.uniform(-1, 1, len(k))
            y += master["crackle"] * np.sqrt(np.mean(y ** 2)) * filt(c, "band", (800, 6000)) * 300
        # Loudness: mostly by the mean dB level (what a log-mel sees), partly by RMS. Dense music
        # has a higher mean dB than sparse music at the same RMS; this takes that cue away.
        rms = np.sqrt(np.mean(y ** 2)) + 1e-9
        by_rms = 20 * np.log10(master["rms"] / rms)
        by_db = LEVEL_DB + 20 * np.log10(master["rms"] / 0.1) - level_db
        scale = 10 ** (np.clip(by_db, by_rms - 8, by_rms + 8) * 0.8 / 20 + by_rms * 0.2 / 20)
        if master["wide"]:
            side = Sd * np.float32(np.sqrt(np.mean(y ** 2)) / dry_rms)
            y = np.stack([y + side, y - side])
        else:                             # a mono mix in a stereo file (identical channels)
            y = np.stack([y, y])
        y = np.tanh(y * scale * 1.2) / 1.2
        return (y / max(1.0, np.abs(y).max() / 0.98)).astype(np.float32)
