"""The genre composers of the demo set: what makes a track sound like its genre.

Song (the time grid, harmony and the generic parts: bass lines, chords, arpeggios, melodies, rap),
artist_style (all that an artist keeps across its tracks, drawn from pools shared by all genres), one
compose_<genre> per genre of fma_small (COMPOSERS), the background beds, and render: one track from
(genre, sub-genres, artist, track id, seed) to float32 stereo audio at OUT_SR.
"""
from __future__ import annotations

import numpy as np
import soxr

from .synth import (DYN_EDGES, KMAX, OUT_SR, SCALES, SR, VEL, Synth, _lookup, _table, degree, filt, hz, pattern,
                    random_kit, random_patch)

# --------------------------------------------------------------------------------------------
# Composition helpers
# --------------------------------------------------------------------------------------------

class Song:
    """State shared by the composers: rng, artist style, grid (step times), harmony, synth."""

    def __init__(self, S: Synth, rng, A: dict, subs: set, seconds: float):
        self.S, self.r, self.A, self.subs, self.seconds = S, rng, A, subs, seconds
        self.t = None

    def inst(self, role: str, typical: str):
        """The artist's instrument for a role: the genre's typical one, or one from the shared pool."""
        u = self.A["role_u"][role]
        if u < P_TYPICAL:
            return self.A["patches"][typical]
        pool = ROLE_POOLS[role]
        return self.A["patches"][pool[int(u * 997) % len(pool)]]

    # -- time grid
    def grid(self, bpm, spb, bar_steps, swing=0.5, rubato=0.0, jitter=None, fermata=None):
        """Step times (s) for the whole clip. spb steps per beat; swing delays odd steps;
        rubato: slow tempo drift (fraction); fermata=(bars, stretch): the last beat of every
        phrase of `bars` bars is held `stretch` times longer, the beat before slows down."""
        r = self.r
        self.bpm, self.spb, self.bar_steps = bpm, spb, bar_steps
        step = 60.0 / bpm / spb
        self.step = step
        n = int(1.6 * self.seconds / step) + 6 * bar_steps
        dur = np.full(n, step)
        if rubato > 0:   # slow tempo drift (smoothed random walk)
            k = np.cumsum(r.standard_normal(n))
            k = np.convolve(k - k.mean(), np.ones(8) / 8, "same")
            dur *= 1 + rubato * np.tanh(k / (np.std(k) + 1e-9))
        if fermata:
            bars, stretch = fermata
            for b in range(bars - 1, n // bar_steps, bars):
                end = (b + 1) * bar_steps
                dur[end - spb:end] *= stretch
                dur[end - 2 * spb:end - spb] *= 1 + (stretch - 1) / 3
        t = np.concatenate([[0.0], np.cumsum(dur[:-1])])
        if swing != 0.5 and spb % 2 == 0:
            t[1::2] += (swing - 0.5) * 2 * dur[1::2]
        self.t = t - r.uniform(0, bar_steps * step) - bar_steps * step   # start mid-song, at a random phase
        self.n_steps = n
        self.n_bars = n // bar_steps
        self.jitter = self.A["jitter"] if jitter is None else jitter

    def when(self, i, late=0.0):
        if i >= len(self.t):
            return 1e9     # past the end of the clip: S.add ignores it
        return self.t[i] + late + (self.r.normal(0, self.jitter) if self.jitter > 0 else 0.0)

    def drums(self, stem, voice, pat, vel=1.0, late=0.0, bars=None, kit=None, every=1, prob=1.0):
        """Play a step pattern (may span several bars) on a drum voice through the clip."""
        kit = kit or self.A["kit"]
        pl = len(pat)
        hits = pattern(pat)
        for start in range(0, self.n_steps - pl + 1, pl):
            b = start // self.bar_steps
            if bars is not None and not bars[min(b, len(bars) - 1)]:
                continue
            if (start // pl) % every:
                continue
            for off, v in hits:
                if prob < 1 and self.r.random() > prob:
                    continue
                w = self.S.drum(kit, voice, int(self.r.integers(3)))
                self.S.add(stem, self.when(start + off, late), w, vel * v * (1 + self.r.normal(0, 0.08)))

    def sections(self, p_keep=0.85, block=4):
        """Per-bar on/off mask in blocks of `block` bars (arrangement: layers drop out sometimes)."""
        nb = self.n_bars + 1
        blocks = self.r.random((nb + block - 1) // block) < p_keep
        return np.repeat(blocks, block)[:nb]

    # -- harmony
    def harmony(self, root, scale, prog, bars_per_chord=1, size=3):
        self.root, self.scale = root, SCALES[scale] if isinstance(scale, str) else scale
        self.prog, self.bpc, self.chord_size = prog, bars_per_chord, size

    def chord_degree(self, bar):
        return self.prog[(bar // self.bpc) % len(self.prog)]

    def chord(self, bar, center, size=None, power=False):
        """Chord tones (midi) of the chord at `bar`, voiced close to `center`."""
        d = self.chord_degree(bar)
        if power:
            base = degree(self.root, self.scale, d)
            base += 12 * round((center - base) / 12)
            return [base, base + 7, base + 12]
        size = size or self.chord_size
        notes = [degree(self.root, self.scale, d + 2 * j) for j in range(size)]
        out = []
        for m in notes:
            m += 12 * round((center - m) / 12)
            out.append(m)
        return sorted(out)

    def bass_note(self, bar, center, offset_deg=0):
        m = degree(self.root, self.scale, self.chord_degree(bar) + offset_deg)
        return m + 12 * round((center - m) / 12)

    def bar_step(self, bar):
        return bar * self.bar_steps

    def bar_len(self):
        return self.bar_steps * self.step

    # -- generic parts
    def bassline(self, patch, pat, center, stem="bass", gate=0.9, octave_jumps=False, bars=None, glide=False):
        """Bass on the steps of `pat` (one bar): chord root (or its fifth / octave for 'f' / 'O')."""
        steps = [(i, ch) for i, ch in enumerate(pat) if ch not in ".-"]
        prev = None
        for b in range(self.n_bars):
            if bars is not None and not bars[b]:
                continue
            for j, (i, ch) in enumerate(steps):
                nxt = steps[j + 1][0] if j + 1 < len(steps) else len(pat)
                m = self.bass_note(b, center)
                if ch == "f":
                    m += 7
                elif ch == "O" or (octave_jumps and i % 2 == 1):
                    m += 12
                dur = max(0.06, (nxt - i) * self.step * gate * self.A["gate"])
                w = self.S.note(patch, m, dur, glide_from=prev if glide and prev != m else None)
                self.S.add(stem, self.when(self.bar_step(b) + i), w, 0.9 if ch != "o" else 0.5)
                prev = m

    def comp(self, patch, pat, center, stem="harm", gate=0.9, strum=0.0, size=None, power=False, bars=None,
             vel=1.0):
        """Chords on the steps of `pat` (one bar), each held until the next hit (times gate)."""
        steps = [(i, VEL.get(ch, 0.7)) for i, ch in enumerate(pat) if ch not in ".-"]
        for b in range(self.n_bars):
            if bars is not None and not bars[b]:
                continue
            notes = self.chord(b, center, size=size, power=power)
            for j, (i, v) in enumerate(steps):
                nxt = steps[j + 1][0] if j + 1 < len(steps) else len(pat)
                dur = max(0.05, (nxt - i) * self.step * gate * self.A["gate"])
                t0 = self.when(self.bar_step(b) + i)
                for k, m in enumerate(notes):
                    self.S.add(stem, t0 + k * strum, self.S.note(patch, m, dur), v * vel * 0.6)

    def arpeggio(self, patch, order, center, stem="harm", gate=1.0, size=None, bars=None, every=1, vel=1.0,
                 hold_bar=False, accent=None):
        """One note per step, cycling chord-tone indices `order` (index >= size goes up an octave)."""
        L = len(order)
        for b in range(self.n_bars):
            if bars is not None and not bars[b]:
                continue
            notes = self.chord(b, center, size=size)
            for i in range(0, self.bar_steps, every):
                idx = order[(i // every) % L]
                if idx is None:
                    continue
                o, k = divmod(idx, len(notes))
                m = notes[k] + 12 * o
                dur = ((self.bar_steps - i) * self.step if hold_bar else self.step * every * gate) * self.A["gate"]
                a = vel * (1.0 if accent is None else accent[(i // every) % len(accent)])
                self.S.add(stem, self.when(self.bar_step(b) + i), self.S.note(patch, m, max(0.05, dur)), a * 0.6)

    def melody(self, patch, rhythms, center, stem="lead", motion=(0.35, 0.35, 0.2, 0.1), repeat=2,
               phrase=4, chord_tone_p=0.6, vel=1.0, orn_p=0.0, orn_kinds=("trill", "slide"), legato=0.9,
               glide=False, bars=None, vowels=None, rest_p=0.0):
        """Motif-based melody: a motif of `repeat` bars is built from rhythm cells and a random walk
        over scale degrees (motion = probabilities of steps 0, +-1, +-2, leap), then repeated
        through each `phrase` bars with a varied ending: repetition is part of the genre."""
        r = self.r
        L = len(self.scale)
        base = round((center - self.root) / 12 * L)

        def make_motif(bar0):
            notes = []
            d = base
            for bb in range(repeat):
                cell = rhythms[r.integers(len(rhythms))]
                ons = [i for i, ch in enumerate(cell) if ch == "x"]
                for i in ons:
                    # hold through '-' only
                    k = i + 1
                    while k < len(cell) and cell[k] == "-":
                        k += 1
                    mv = r.choice(4, p=motion)
                    step = [0, 1, 2, int(r.integers(3, 6))][mv] * (1 if r.random() < 0.5 else -1)
                    d = int(np.clip(d + step, base - L, base + L))
                    if i % (self.spb * 2) == 0 and r.random() < chord_tone_p:   # strong beats: chord tone
                        cd = self.chord_degree(bar0 + bb)
                        cands = [cd + 2 * q + L * o for q in range(3) for o in range(-2, 3)]
                        d = min(cands, key=lambda c: abs(c - d))
                    notes.append((bb * self.bar_steps + i, k - i, d))
            return notes

        motif = None
        prev = None
        for b0 in range(0, self.n_bars, repeat):
            if b0 % phrase == 0 or motif is None:
                motif = make_motif(b0)
            use = list(motif)
            if (b0 + repeat) % phrase == 0 and len(use) > 1:       # vary the phrase ending
                use = use[:-2] + [(s, ln, d + int(r.integers(-2, 3))) for s, ln, d in use[-2:]]
            for s, ln, d in use:
                bar = b0 + s // self.bar_steps
                if bar >= self.n_bars or (bars is not None and not bars[bar]):
                    continue
                if rest_p and r.random() < rest_p:
                    continue
                m = degree(self.root, self.scale, d)
                dur = max(0.05, ln * self.step * legato * min(1.0, self.A["gate"]))
                orn = None
                if orn_p and ln * self.step > 0.18 and r.random() < orn_p:
                    kind = orn_kinds[r.integers(len(orn_kinds))]
                    up = degree(self.root, self.scale, d + 1) - m
                    orn = {"trill": ("trill", float(up), float(r.choice([11.0, 13.0, 15.0]))),
                           "mordent": ("mordent", float(-up), 0.06),
                           "slide": ("slide", float(r.choice([-2.0, -1.0, 2.0])), float(r.choice([0.08, 0.14]))),
                           "gamak": ("gamak", float(r.choice([0.8, 1.2])), float(r.choice([5.0, 7.0]))),
                           "bend": ("bend", float(r.choice([1.0, 2.0])), float(r.choice([0.05, 0.12]))),
                           "wobble": ("wobble", 0.35, float(r.choice([0.7, 1.3])))}[kind]
                vw = None if vowels is None else vowels[r.integers(len(vowels))]
                w = self.S.note(patch, m, dur, orn=orn, vowel=vw or "a",
                                glide_from=prev if glide and prev is not None and prev != m else None)
                self.S.add(stem, self.when(self.bar_step(b0) + s), w, vel * 0.6 * (1 + r.normal(0, 0.06)))
                prev = m

    def rap(self, patch, center, density, stem="lead", bars=None):
        """Rapped syllables: 16th-note grid, dense, nearly monotone, short, with rests at phrase ends."""
        r = self.r
        spb = self.spb
        for b in range(self.n_bars):
            if bars is not None and not bars[b]:
                continue
            line_end = (b % 2 == 1)
            for i in range(self.bar_steps):
                if line_end and i >= self.bar_steps - spb * 1.5:
                    continue
                if r.random() > density * (1.0 if i % 2 == 0 else 0.8):
                    continue
                m = center + r.choice([0, 0, 0, 1, 2, -1, -2, 3])
                w = self.S.syllable(patch, m, self.step * r.uniform(0.5, 0.9), "aeiou"[r.integers(5)],
                                    consonant=r.random() < 0.7)
                self.S.add(stem, self.when(b * self.bar_steps + i), w, 0.65 * (1.15 if i % 4 == 0 else 1.0))


def _pick(rng, pool, pref=None, p_pref=0.75):
    """Pick from a pool, preferring the artist's favourite index most of the time."""
    if pref is not None and rng.random() < p_pref:
        return pool[pref % len(pool)]
    return pool[rng.integers(len(pool))]


# --------------------------------------------------------------------------------------------
# Artist style (shared by all tracks of an artist) and the genre composers
# --------------------------------------------------------------------------------------------

# Instrument pools per role, shared by all genres: an artist plays its genre's typical instrument
# for a role with probability P_TYPICAL, otherwise one from the shared pool.
ROLES = ("harm", "lead", "bass", "arp", "pad")
ROLE_POOLS = {"harm": ["keys", "pluck", "pad", "organ", "power", "square", "lead"],
              "lead": ["lead", "voice", "pluck", "keys", "square", "bell", "organ"],
              "bass": ["bass", "sub", "pluck", "square"],
              "arp": ["pluck", "keys", "square", "bell", "lead"],
              "pad": ["pad", "organ", "lead", "keys"]}
P_TYPICAL = 0.35


def artist_style(seed: int, artist_id: int) -> dict:
    """Everything an artist keeps across tracks: timbres, kit, production, preferences.

    Drawn from pools shared by all genres, so spectra overlap across genres."""
    r = np.random.default_rng([seed, 7, artist_id])
    u = r.uniform
    kinds = ["pluck", "keys", "pad", "lead", "bass", "sub", "voice", "square", "organ", "bell", "power"]
    A = dict(
        patches={k: random_patch(r, k) for k in kinds},
        kit=random_kit(r),
        tempo_u=u(0, 1),               # where in the genre's tempo range the artist sits
        pref=int(r.integers(0, 1000)),  # favourite pattern index (used modulo each pool)
        pref2=int(r.integers(0, 1000)),
        key=int(r.integers(0, 12)),
        register=int(r.integers(-7, 8)),
        jitter=u(0.0, 0.012),
        swing_u=u(0, 1),
        density=u(0, 1),
        levels={s: 10 ** ((u(-3, 6) if s == "drums" else u(-6, 6)) / 20) for s in Synth.STEMS},
        pans={s: u(-0.35, 0.35) for s in Synth.STEMS},
        wide=bool(r.random() < 0.3),   # stereo mix; otherwise mono in a stereo file (encodes faster)
        drive=max(0.0, u(-0.6, 1.2)),
        lp=u(4000, 10000) if r.random() < 0.3 else None,
        rev_t60=u(0.3, 2.2), rev_mix=u(0.0, 0.45),
        tilt=u(-6, -1.5),                                                # dB per octave above 200 Hz
        eq=[(u(-4, 3.5), u(0.3, 1.2), u(-8, 8)) for _ in range(4)],     # (log2(f/1kHz), width oct, dB)
        match=u(0.75, 0.95),
        dyn_curve=[u(-4, 4) for _ in range(len(DYN_EDGES) - 1)],   # mean dB per band vs the overall mean
        dyn=u(0.7, 0.95), dyn_std=[u(4, 10) for _ in range(len(DYN_EDGES) - 1)],   # see Synth.mix
        gate=u(0.5, 1.4),                                # articulation: staccato .. legato
        hiss=10 ** (u(-55, -25) / 20), hiss_band=(u(30, 2000), u(4000, 10000)),
        rms=10 ** (u(-24, -14) / 20),
        role_u={k: u(0, 1) for k in ROLES},
        crackle_u=u(0, 1), crackle=10 ** (u(-40, -25) / 20),
        harm_drive=max(0.0, u(-1.0, 1.2)),
        beds=[(BEDS[int(r.integers(len(BEDS)))], u(-20, -6), u(0, 1)) for _ in range(int(r.choice(3, p=[0.3, 0.45, 0.25])))],
    )
    return A


def _tempo(s: Song, lo, hi):
    u = np.clip(s.A["tempo_u"] + s.r.normal(0, 0.15), 0, 1)
    return lo + (hi - lo) * u


def compose_electronic(s: Song):
    """Four-on-the-floor kick, off-beat hats, clap on 2 and 4, side-chain pumping, 16th arpeggios,
    filter sweeps. Techno: faster, no pads, 3-step polymetric percussion; House: off-beat 7th-chord
    stabs and shuffle; IDM: stuttered 32nd-note glitches, irregular hats; Chiptune: square waves and
    fast arpeggios; Dance: big pads and a sung-like lead."""
    r, A, P, subs = s.r, s.A, s.A["patches"], s.subs
    techno, house, idm, chip, dance = (g in subs for g in (181, 182, 236, 240, 296))
    bpm = _tempo(s, 126, 140) if techno else _tempo(s, 118, 127) if house else _tempo(s, 118, 134)
    s.grid(bpm, 4, 16, swing=0.5 + (0.06 if house else 0.02) * A["swing_u"])
    prog = _pick(r, [[0, 5, 2, 6], [0, 0, 5, 5], [0, 3, 4, 3], [5, 3, 0, 4]], A["pref2"])
    s.harmony(36 + A["key"], _pick(r, ["minor", "dorian", "phrygian", "major"], A["pref"]), prog, int(r.choice([1, 2, 4])))
    drop = s.sections(0.9)
    s.drums("drums", "kick", "X...X...X...X...", bars=drop)
    s.drums("drums", _pick(r, ["clap", "snare"], A["pref"]), "....x.......x...", vel=0.8, bars=drop)
    s.drums("drums", "ohat", _pick(r, ["..x...x...x...x.", "..x...x...x...xx"], A["pref2"]), vel=0.6)
    if idm:
        mask = r.random(16) < 0.6
        s.drums("drums", "hat", "".join("x" if m else "." for m in mask), vel=0.5)
        for _ in range(int(s.seconds * 0.6)):     # stutter bursts: one sound retriggered in 32nds
            i = int(r.integers(0, s.n_steps - 4))
            voice = ["snare", "hat", "click", "tom_hi"][r.integers(4)]
            for k in range(int(r.integers(4, 9))):
                s.S.add("perc", s.t[i] + k * s.step / 2, s.S.drum(A["kit"], voice), 0.5 * (0.85 ** k))
    else:
        s.drums("drums", "hat", _pick(r, ["xoxoxoxoxoxoxoxo", "x.x.x.x.x.x.x.x.", "oxoooxoooxoooxoo"], A["pref"]), vel=0.45)
    if techno:
        s.drums("perc", "rim", "x..x..x..x..x..x..x..x..x..x..x..x..x..x..x..x..", vel=0.5)  # 3-step loop over 3 bars
        s.drums("perc", "tom", "......x.......x.", vel=0.4, prob=0.7)
    bass = P["square"] if chip else s.inst("bass", "bass")
    s.bassline(bass, _pick(r, ["..x...x...x...x.", ".xxx.xxx.xxx.xxx", "x..x..x...x..x..", "..xx..xx..xx..xx"], A["pref"]),
               36 + A["key"] % 12 + A["register"] // 2, gate=0.8)
    lead = P["square"] if chip else s.inst("arp", "pluck")
    arp = _pick(r, [[0, 1, 2, 1], [0, 2, 1, 3, 2, 1], [0, 1, 2, 3], [3, 2, 1, 0, 1, 2], [0, 0, 2, 1]], A["pref"])
    s.arpeggio(lead, arp, 66 + A["register"], stem="lead", gate=0.6, every=1 if chip else int(r.choice([1, 2])),
               vel=0.7, bars=s.sections(0.8), size=4)
    if not techno:
        if house:
            s.comp(s.inst("harm", "organ"), "..x...x...x...x.", 60 + A["register"], gate=0.3, size=4)
        else:
            s.comp(s.inst("pad", "pad"), "x...............", 60 + A["register"], gate=1.0, size=4)
    if dance:
        s.melody(s.inst("lead", "voice"), ["x-x-x---x-x-x---", "x---x-x-x---x---"], 70 + A["register"], vowels="aeo", vel=0.8)
    kicks = [s.t[i] for i in range(0, s.n_steps, 4)]
    s.S.duck(["bass", "harm", "lead", "tex", "bed"], kicks, r.uniform(0.5, 0.9), 60 / bpm * r.uniform(0.25, 0.5))
    s.S.sweep("harm" if not techno else "lead", 400, 8000, s.bar_len() * r.choice([4, 8]), r.uniform(0, 6))
    return dict(drums=1.0, perc=0.6, bass=0.9, harm=0.6, lead=0.6, tex=0.3, core=("drums", "bass", "lead"))


def compose_rock(s: Song):
    """Straight 8th-note power-chord chugging (distorted), kick on 1 and 3, snare on 2 and 4,
    crash every 4 bars, drum fills at the end of 4-bar phrases, root-note 8th bass.
    Punk: 165-200 bpm; Metal: double-kick 16ths, gallops, heavy drive; Post-Rock: tremolo-picked 16th
    melodies with echo and a crescendo; Psych-Rock: phaser sweep and bent lead; Lo-Fi: dull, hissy,
    wobbly; Indie-Rock: clean jangly 8th arpeggios."""
    r, A, P, subs = s.r, s.A, s.A["patches"], s.subs
    punk, metal, post, psych, lofi, indie = (g in subs for g in (25, 31, 26, 58, 27, 66))
    bpm = _tempo(s, 165, 200) if punk else _tempo(s, 90, 120) if post else _tempo(s, 100, 150)
    s.grid(bpm, 4, 16, swing=0.5)
    scale = _pick(r, ["pent_minor", "mixolydian", "minor", "blues"], A["pref"])
    prog = _pick(r, [[0, 6, 3, 0], [0, 5, 6, 0], [0, 3, 4, 3], [0, 2, 3, 4]] if scale != "pent_minor"
                 else [[0, 3, 2, 0], [0, 4, 3, 1]], A["pref2"])
    s.harmony(40 + A["key"] % 7, scale, prog, int(r.choice([1, 2])))
    kick = "XxXxXxXxXxXxXxXx" if metal else "X...X...X...X..." if punk else \
        _pick(r, ["X.......X.x.....", "X...x...X.x.x...", "X.x.....X.x....."], A["pref"])
    s.drums("drums", "kick", kick)
    s.drums("drums", "snare", "..X...X...X...X." if punk else "....X.......X...")   # punk: polka beat
    s.drums("drums", _pick(r, ["hat", "ride", "ohat"], A["pref2"]), "x.x.x.x.x.x.x.x.", vel=0.55)
    s.drums("drums", "crash", "X" + "." * 63, vel=0.6)
    for b in range(3, s.n_bars, 4):   # fills: toms and snare 16ths on beats 3-4
        for i in range(8, 16):
            s.S.add("drums", s.when(b * 16 + i), s.S.drum(A["kit"], ["tom_hi", "tom", "snare"][(i - 8) // 3]), 0.75)
    gpat = "x.xxx.xxx.xxx.xx" if metal else _pick(r, ["x.x.x.x.x.x.x.x.", "X.x.x.xXx.x.x.x.", "X..x..x.X..x..x."], A["pref"])
    guitar = P["pluck"] if indie else s.inst("harm", "power")
    if indie:
        s.arpeggio(guitar, [0, 1, 2, 3, 2, 1, 0, 2], 57 + A["register"], every=2, gate=1.5, size=4)
    else:
        s.comp(guitar, gpat, 50 + A["register"] // 2, power=True, gate=0.5 if metal else 0.8)
    s.bassline(s.inst("bass", "bass"), "x.x.x.x.x.x.x.x." if not metal else gpat, 33 + A["key"] % 7, gate=0.8)
    if post:
        s.arpeggio(s.inst("lead", "lead"), [2, 2, 2, 2, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1], 72 + A["register"], stem="lead",
                   gate=0.7, size=4)
        s.S.echo("lead", 60 / bpm * 0.75, 0.45)
        t = np.arange(s.S.n) / SR
        s.S.stems["harm"] *= (0.3 + 0.7 * t / t[-1]).astype(np.float32)
    if psych:
        s.S.sweep("harm", 600, 5000, r.uniform(1.5, 4))
        s.melody(s.inst("lead", "lead"), ["x-------x---x---", "x---x---x-------"], 69 + A["register"], orn_p=0.5,
                 orn_kinds=("bend",), vel=0.7)
    elif r.random() < 0.3:
        s.melody(s.inst("lead", "lead"), ["x.x.x.x.x-x.x---", "x-x-x-x-x-x-x---"], 67 + A["register"], vel=0.6)
    out = dict(drums=1.0, perc=0.5, bass=0.8, harm=1.0, lead=0.7, tex=0.3, core=("drums", "harm"))
    out["harm_drive"] = 0.3 if indie else 1.5 if metal else \
        r.uniform(0.6, 1.2) if A["role_u"]["harm"] < P_TYPICAL else A["harm_drive"]   # clean-guitar artists too
    if lofi:
        out.update(master_lp=r.uniform(2500, 4500), hiss=10 ** (r.uniform(-40, -32) / 20))
        s.S.stems["harm"] *= (1 + 0.15 * np.sin(2 * np.pi * 0.8 * np.arange(s.S.n) / SR)).astype(np.float32)
    return out


def compose_hiphop(s: Song):
    """Swung 16th hats, syncopated boom-bap kick, snare on 2 and 4 played late, long gliding 808
    notes, a low-passed 2-bar sample loop with vinyl crackle, rapped syllables.
    Rap: dense rap always; Hip-Hop Beats: no rap, chopped chord stabs; Alternative: jazzy 9th chords
    and a flute line; Breakbeat: 100-115 bpm busy break with ghost snares; Wonky: off-grid timing
    and detuned, wobbling synths."""
    r, A, P, subs = s.r, s.A, s.A["patches"], s.subs
    rap, beats, alt, brk, wonky = (g in subs for g in (539, 811, 100, 542, 693))
    bpm = _tempo(s, 100, 115) if brk else _tempo(s, 80, 97)
    s.grid(bpm, 4, 16, swing=0.56 + 0.1 * A["swing_u"], jitter=0.025 if wonky else None)
    s.harmony(36 + A["key"], _pick(r, ["minor", "dorian", "pent_minor"], A["pref"]),
              _pick(r, [[0, 5], [0, 3], [1, 4, 0, 0], [0, 0, 5, 4]], A["pref2"]), 1, 4 if alt else 3)
    kick = "X.x...X..X.x..x." if brk else _pick(r, ["X.....x...x.....", "X......xx.....x.", "X..x......x..x..",
                                                      "X.x.......x....."], A["pref"])
    late = r.uniform(0.01, 0.03) + (0.02 if wonky else 0)
    s.drums("drums", "kick", kick)
    s.drums("drums", "snare", "....X..o....X.o." if brk else "....X.......X...", late=late)
    s.drums("drums", "hat", _pick(r, ["xoxoxoxoxoxoxoxo", "x.x.x.x.x.x.x.x.", "xxoxxxoxxxoxxxox"], A["pref2"]), vel=0.5)
    # 808: long notes on the kick steps, gliding
    s.bassline(s.inst("bass", "sub"), kick.replace("X", "x"), 36 + A["key"] % 12, gate=1.0, glide=True)
    loop = s.inst("harm", "keys")
    if beats:   # chopped stabs
        s.comp(loop, _pick(r, ["x..x......x.....", "x.....x...x..x.."], A["pref2"]), 60 + A["register"], gate=0.4)
    else:
        s.comp(loop, "x.......x.......", 60 + A["register"], gate=1.0, size=4 if alt else 3, vel=0.8)
    nrap = rap or (not beats and r.random() < 0.5)
    if nrap:
        s.rap(P["voice"], 50 + A["register"] // 2, 0.85 if rap else 0.55, bars=s.sections(0.85, 2))
    if alt:
        s.melody(s.inst("lead", "lead"), ["x---x-x-x-------", "x-x-x---x---x---"], 74 + A["register"], vel=0.5, orn_p=0.2,
                 orn_kinds=("slide",))
    if wonky:
        s.melody(P["square"], ["x---x---x---x---", "x-------x-x-x---"], 67 + A["register"], vel=0.5, orn_p=0.9,
                 orn_kinds=("wobble",))
    return dict(drums=1.0, perc=0.5, bass=1.0, harm=0.6, lead=0.8, tex=0.5, harm_lp=r.uniform(2000, 4500),
                core=("drums", "lead"))


def compose_pop(s: Song):
    """Syncopated 3-3-2 bass, claps on 2 and 4, chord changes every bar (I-V-vi-IV family) played in
    8th pulses, a sung hook (formant voice with vibrato) that repeats every 2 bars.
    Synth Pop: saw lead, gated pad, octave bass, often four-on-the-floor; Experimental Pop: stuttered
    vocal chops and odd percussion."""
    r, A, P, subs = s.r, s.A, s.A["patches"], s.subs
    synth, expo = 362 in subs, 76 in subs
    s.grid(_tempo(s, 96, 126), 4, 16, swing=0.5 + 0.02 * A["swing_u"])
    s.harmony(48 + A["key"], "major", _pick(r, [[0, 4, 5, 3], [5, 3, 0, 4], [0, 5, 3, 4], [3, 4, 0, 0]], A["pref"]), 1)
    four = synth and r.random() < 0.5
    s.drums("drums", "kick", "X...X...X...X..." if four else _pick(r, ["X.....x.X.......", "X.......X.x.....",
                                                                        "X..x..x.X......."], A["pref"]))
    s.drums("drums", "clap", "....X.......X...")
    s.drums("drums", "snare", "....x.......x...", vel=0.6)
    s.drums("drums", "hat", _pick(r, ["x.x.x.x.x.x.x.x.", "x.xxx.xxx.xxx.xx"], A["pref2"]), vel=0.45)
    bass = "x.x.x.x.x.x.x.x." if synth else _pick(r, ["x..x..x.x..x..x.", "x..x..x...x.x...", "x.....x.x.....x."], A["pref2"])
    s.bassline(s.inst("bass", "bass"), bass, 38 + A["key"] % 12, octave_jumps=synth, gate=0.85)
    keys = P["pad"] if synth else s.inst("harm", "keys")
    s.comp(keys, _pick(r, ["x.x.x.x.x.x.x.x.", "x..x..x.x..x..x.", "x...x...x...x..."], A["pref"]), 62 + A["register"],
           gate=0.8, vel=0.8)
    if synth:
        s.S.lfo_gain("harm", s.bpm / 60 * 4, 0.7, "gate")
    vox = P["lead"] if synth else s.inst("lead", "voice")
    s.melody(vox, ["x-x-x---x-x-x---", "x---x-x-x---x-x-", "..x-x-x-x---x---", "x-x---x-x-x-x---"],
             67 + A["register"], motion=(0.3, 0.45, 0.2, 0.05), repeat=2, phrase=8, vowels="aeiou",
             glide=True, bars=s.sections(0.9, 2))
    if expo:
        for _ in range(int(s.seconds * 0.4)):   # stuttered vocal chops
            i = int(r.integers(0, s.n_steps - 8))
            w = s.S.syllable(P["voice"], 67 + A["register"] + int(r.integers(-3, 4)), s.step * 0.6, "aeiou"[r.integers(5)], True)
            for k in range(int(r.integers(3, 7))):
                s.S.add("tex", s.t[i] + k * s.step, w, 0.5)
        s.drums("perc", "bell", "..x....x...x..x.", vel=0.4, prob=0.6)
    return dict(drums=1.0, perc=0.5, bass=0.8, harm=0.7, lead=0.9, tex=0.6, core=("drums", "bass", "lead"))


FOLK_METERS = {  # name: (steps per beat, steps per bar, guitar pattern (chord-tone indices per step))
    "3/4": (2, 6, [0, None, 2, 1, 3, 1]),
    "6/8": (3, 6, [0, 1, 2, -1, 1, 2]),
    "4/4": (2, 8, [0, 2, -1, 2, 0, 2, -1, 1]),
}


def compose_folk(s: Song):
    """Fingerpicked arpeggios in 3/4, 6/8 or a boom-chick 4/4 (alternating bass), plucked timbres,
    little or no drum kit (a stomp, a tambourine), a fiddle or voice melody with vibrato.
    Singer-Songwriter: strummed 4/4 guitar and a voice; British Folk: fast 6/8 jig with running
    fiddle 8ths over a drone; Psych-Folk: drone, tremolo, reverb; Free-Folk: rubato, sparse;
    Freak-Folk: toy-bell lead and displaced accents."""
    r, A, P, subs = s.r, s.A, s.A["patches"], s.subs
    ss, brit, psych, free, freak = (g in subs for g in (103, 180, 33, 49, 94))
    meter = "4/4" if ss else "6/8" if brit else _pick(r, ["3/4", "6/8", "4/4"], A["pref"])
    spb, bar, pick = FOLK_METERS[meter]
    bpm = _tempo(s, 110, 135) if brit else _tempo(s, 66, 92) if meter == "6/8" else _tempo(s, 96, 136)
    s.grid(bpm, spb, bar, rubato=0.04 if free else 0.0, jitter=0.01 if free else None)
    scale = _pick(r, ["major", "mixolydian", "dorian", "pent_major"], A["pref2"])
    s.harmony(43 + A["key"] % 9, scale, _pick(r, [[0, 3, 0, 4], [0, 4, 5, 3], [0, 0, 3, 4], [0, 6, 0, 3]]
                                              if scale != "pent_major" else [[0, 3, 0, 2]], A["pref"]), int(r.choice([1, 2])))
    guitar = s.inst("arp", "pluck")
    # boom-chick: bass on the downbeats (root / fifth alternating), the guitar in between
    s.bassline(s.inst("bass", "pluck"), {"3/4": "x.....", "6/8": "x..f..", "4/4": "x...f..."}[meter],
               40 + A["key"] % 12, gate=1.2)
    if ss or _pick(r, [True, False], A["pref2"]):   # strummed chords (a fast spread of onsets)
        strum = {"3/4": "..x.x.", "6/8": ".xx.xx", "4/4": "..x.xx.x"}[meter] if not ss else \
            _pick(r, ["x.x.xxx.", "x.xx.xx.", "x..x.xx."], A["pref2"])
        s.comp(guitar, strum, 55 + A["register"], strum=r.uniform(0.012, 0.03), gate=1.0, size=4)
    else:                                             # fingerpicked pattern
        order = [None if (i is None or k % spb == 0) else (i if i >= 0 else 0) for k, i in enumerate(pick)]
        s.arpeggio(guitar, order, 57 + A["register"], gate=2.0, size=3)
    if r.random() < 0.5 and not free:
        beat = "x" + "." * (spb - 1)
        s.drums("perc", "stomp", beat + "." * (bar - spb), vel=0.6)
        s.drums("perc", "tamb", "." * spb + beat * (bar // spb - 1), vel=0.35)
    lead = P["bell"] if freak else P["voice"] if ss else s.inst("lead", "lead")
    if brit:
        s.melody(s.inst("lead", "lead"), ["xxxxxx", "x-xx-x", "xxx-xx"], 72 + A["register"], motion=(0.1, 0.6, 0.25, 0.05),
                 repeat=2, phrase=4, legato=1.0, orn_p=0.15, orn_kinds=("mordent",))
    else:
        cells = {"3/4": ["x-x-x-", "x---x-", "x-xxx-"], "6/8": ["x-xx-x", "x--x--", "x-xx--"],
                 "4/4": ["x-x-x---", "x---x-x-", "x-xxx---"]}[meter]
        s.melody(lead, cells, 67 + A["register"], motion=(0.2, 0.5, 0.25, 0.05), repeat=2,
                 vowels="aeou", rest_p=0.15 if free else 0.0, bars=s.sections(0.8, 2))
    if brit or psych:
        s.S.add("tex", -1, s.S.note(P["organ"] if brit else P["pad"], s.root + 12, s.seconds + 2), 0.5)
        s.S.add("tex", -1, s.S.note(P["organ"] if brit else P["pad"], s.root + 19, s.seconds + 2), 0.35)
    if psych:
        s.S.lfo_gain("harm", r.uniform(5, 8), 0.6)
    if freak:
        s.drums("perc", "click", "x" + "." * (bar - 2) + "x", vel=0.4)
    return dict(drums=0.6, perc=0.6, bass=0.7, harm=1.0, lead=0.8, tex=0.4, core=("harm", "bass"))


def compose_instrumental(s: Song):
    """Slow (60-88 bpm), rubato; broken-chord piano arpeggios with pedal (notes ring to the end of the
    bar), bass octave on the downbeat, string pads swelling per chord, long melody notes with leaps,
    slow harmonic rhythm (2 bars per chord). Soundtrack: staccato string ostinato 8ths and timpani;
    Ambient: 50-66 bpm, no arpeggio, long pads, slow filter motion and sparse bells; New Age:
    pentatonic bell arpeggios over pads."""
    r, A, P, subs = s.r, s.A, s.A["patches"], s.subs
    st, amb, na = (g in subs for g in (18, 107, 267))
    meter = _pick(r, [(2, 8), (3, 12), (2, 6)], A["pref"])
    spb, bar = meter
    s.grid(_tempo(s, 48, 62) if amb else _tempo(s, 54, 80), spb, bar, rubato=0.1, fermata=(2 if bar == 12 else 4, r.uniform(1.8, 2.6)))
    s.harmony(45 + A["key"] % 10, "pent_major" if na else _pick(r, ["major", "minor", "harmonic_minor"], A["pref2"]),
              _pick(r, [[5, 3, 0, 4], [0, 5, 3, 4], [0, 3, 5, 4], [0, 4, 5, 2]], A["pref"]), 2, 4)
    piano = P["bell"] if na else s.inst("arp", "keys")
    order = _pick(r, [[0, 2, 4, 5, 6, 5, 4, 2], [0, 4, 6, 8, 6, 4], [0, 2, 4, 6, 4, 2], [0, 1, 2, 4, 2, 1]], A["pref2"])
    s.arpeggio(piano, order, 55 + A["register"], gate=1.0, size=4, hold_bar=True, every=2 if amb else 1,
               accent=[1.0] + [0.65] * (len(order) - 1), vel=0.6 if amb else 1.0)
    s.bassline(s.inst("bass", "keys"), "x" + "." * (bar - 1), 36 + A["key"] % 12, gate=1.0)
    s.comp(s.inst("pad", "pad"), "x" + "." * (bar - 1), 60 + A["register"], gate=1.6, size=4, vel=0.8 if not amb else 1.0)
    s.melody(s.inst("lead", "lead"), ["x-----x-", "x-------", "x---x---"] if bar == 8 else
             ["x-----", "x--x--"] if bar == 6 else ["x--------x--", "x-----------"], 72 + A["register"],
             motion=(0.1, 0.3, 0.3, 0.3), repeat=2, phrase=4, legato=1.0, chord_tone_p=0.8, vel=0.7)
    if st:
        s.arpeggio(P["lead"], [0, 0, 0, 0, 1, 1, 0, 0] if bar == 8 else [0] * bar, 48 + A["register"], stem="perc",
                   gate=0.35, size=3, vel=0.7)
        s.drums("drums", "timpani", "X" + "." * (2 * bar - 1), vel=0.7)
    if amb:
        s.S.sweep("harm", 500, 6000, r.uniform(6, 14), r.uniform(0, 6))
        s.melody(P["bell"], ["x-------", "....x---"] if bar == 8 else ["x-----", "...x--"] if bar == 6
                 else ["x-----------"], 79 + A["register"], rest_p=0.5, vel=0.4, stem="tex")
    # crescendo / decrescendo over phrases
    t = np.arange(s.S.n, dtype=np.float32) / SR
    s.S.stems["harm"] *= (0.75 + 0.25 * np.sin(2 * np.pi * t / (s.bar_len() * 4) + r.uniform(0, 6))).astype(np.float32)
    return dict(drums=0.6, perc=0.7, bass=0.6, harm=1.0, lead=0.8, tex=0.5, core=("harm", "lead"))


def compose_international(s: Song):
    """Hand drums with pitch bends, non-western scales and ornamented melodies (trills, slides,
    gamak), over one rhythm family: Latin America / Cumbia (clave, tumbao, montuno, guiro),
    Reggae - Dub (one-drop, off-beat skank, dub echoes), Balkan (7/8 = 2+2+3, brass-like lead),
    Indian (tanpura drone, tabla teentaal, meend/gamak), Middle East (maqsum dum-tek, hijaz, oud
    tremolo), African (12/8 bell pattern, shaker, interlocking kalimba ostinati), Asia-Far East
    (pentatonic koto with bends, taiko). Without a sub-genre: hand drums in 6/8 and a hijaz melody."""
    r, A, P, subs = s.r, s.A, s.A["patches"], s.subs
    style = next((g for g in (502, 46, 79, 118, 86, 102, 92, 172) if g in subs), 0)
    k = A["key"] % 8
    lead = s.inst("lead", "lead")
    orn = ("trill", "slide", "mordent")
    if style in (46, 502):                       # Latin America / Cumbia
        cumbia = style == 502
        s.grid(_tempo(s, 85, 100) if cumbia else _tempo(s, 95, 115), 4, 16)
        s.harmony(45 + k, _pick(r, ["harmonic_minor", "major", "minor"], A["pref2"]), [0, 3, 4, 3] if not cumbia else [0, 4], 1)
        s.drums("perc", "rim", "X..X..X...X.X..." if not cumbia else "..X...X...X...X.", vel=0.7)  # son clave / off-beats
        s.drums("perc", "conga", "......x.....x.x.", vel=0.7)
        s.drums("perc", "conga_hi", "..x.....o.x.....", vel=0.6)
        s.drums("perc", "guiro" if cumbia else "bell", "x.xxx.xxx.xxx.xx" if cumbia else "x...x...x...x...", vel=0.5)
        s.drums("drums", "kick", "x.......x.......", vel=0.6)
        s.bassline(s.inst("bass", "bass"), "...x..x....x..x.", 38 + k)   # tumbao: anticipated
        s.arpeggio(s.inst("arp", "keys"), [0, 2, 1, None, 2, 0, None, 1], 62 + A["register"], every=2, gate=0.5, size=3)  # montuno
        s.melody(lead, ["x-x-x-x-x---x-x-", "x-xx--x-x-x-----"], 72 + A["register"], orn_p=0.3, orn_kinds=orn)
    elif style == 79:                            # Reggae - Dub
        s.grid(_tempo(s, 66, 80), 4, 16, swing=0.5 + 0.08 * A["swing_u"])
        s.harmony(43 + k, _pick(r, ["minor", "major"], A["pref2"]), [0, 3] if r.random() < 0.5 else [0, 5, 3, 4], 1)
        s.drums("drums", "kick", "........X.......")
        s.drums("drums", "rim", "........X.......", vel=0.9)
        s.drums("drums", "hat", "x.x.x.x.x.x.x.x.", vel=0.4)
        s.comp(s.inst("harm", "organ"), "..x...x...x...x.", 62 + A["register"], gate=0.25)
        s.bassline(s.inst("bass", "bass"), _pick(r, ["x..x..x.....x...", "x.x...x.x.......", "x....x.x..x....."], A["pref2"]),
                   36 + k, gate=0.8)
        s.S.echo("drums", 60 / s.bpm * 0.75, 0.55, 5)
        s.S.echo("harm", 60 / s.bpm * 0.5, 0.4, 3)
        s.melody(lead, ["x---x-x-x-------", "x-x-x---x---x---"], 70 + A["register"], orn_p=0.4, orn_kinds=orn,
                 bars=s.sections(0.6, 2))
    elif style == 118:                           # Balkan 7/8
        s.grid(_tempo(s, 300, 380), 2, 7)        # 8th notes as steps
        s.harmony(45 + k, _pick(r, ["harmonic_minor", "hijaz"], A["pref2"]), [0, 3, 4, 0], 2)
        s.drums("drums", "kick", "X.x.X..")
        s.drums("drums", "rim", ".x.x.xx", vel=0.6)
        s.drums("perc", "tamb", "xxxxxxx", vel=0.3)
        s.bassline(s.inst("bass", "bass"), "x.f.x..", 38 + k, gate=0.7)
        s.comp(s.inst("harm", "keys"), ".x.x.x.", 60 + A["register"], gate=0.5)
        s.melody(lead, ["xxxxxxx", "x-xxx-x", "xxx-x--"], 72 + A["register"], motion=(0.05, 0.6, 0.3, 0.05),
                 orn_p=0.35, orn_kinds=("trill", "mordent"), legato=1.0)
    elif style == 86:                            # Indian: tanpura + tabla teentaal + meend
        s.grid(_tempo(s, 75, 100), 2, 32)        # 16 matras in 8ths (teentaal)
        s.harmony(48 + k, _pick(r, ["bhairav", "yaman", "phrygian"], A["pref2"]), [0], 4)
        dha = "x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x."
        s.drums("perc", "bayan", "X.x.x.X.X.x.x.X.X.......x.x.X.x.", vel=0.8)
        s.drums("perc", "tabla", dha, vel=0.7)
        s.drums("perc", "tek", ".o.o.o.o.o.o.o.o.o.o.o.o.o.o.o.o", vel=0.4)
        for i, d in enumerate([7, 12, 12, 0]):   # tanpura: Pa Sa' Sa' Sa, one per beat
            for b in range(0, s.n_steps, 8):
                s.S.add("tex", s.when(b + i * 2), s.S.note(P["pluck"], s.root - 12 + d, 1.5), 0.5)
        s.melody(lead, ["x-------x---x---x-------x-------", "x---x---x-------x-----------x---"], 72 + A["register"],
                 orn_p=0.5, orn_kinds=("slide", "gamak"), legato=1.0, repeat=1, phrase=2)
    elif style == 102:                           # Middle East: maqsum
        s.grid(_tempo(s, 90, 120), 4, 16)
        s.harmony(45 + k, "hijaz", [0, 6, 0, 1], 1)
        s.drums("perc", "dum", "X...........X...", vel=0.9)
        s.drums("perc", "dum", "........X.......", vel=0.7)
        s.drums("perc", "tek", "....x...x...x...".replace("x...x...x", "x.o.x...x"), vel=0.7)
        s.drums("perc", "tamb", "xoxoxoxoxoxoxoxo", vel=0.3)
        s.arpeggio(s.inst("arp", "pluck"), [0] * 16, 57 + A["register"], gate=0.5, size=3, every=1,
                   accent=[1, .5, .5, .5] * 4)   # oud tremolo on the root
        s.melody(lead, ["x---x-x-x---x---", "x-x-x-------x---"], 72 + A["register"], orn_p=0.6,
                 orn_kinds=("slide", "trill"), legato=1.0)
        s.S.add("tex", -1, s.S.note(P["pad"], s.root - 12, s.seconds + 2), 0.4)
    elif style == 92:                            # African 12/8
        s.grid(_tempo(s, 100, 130), 3, 12)
        s.harmony(45 + k, "pent_major", [0, 3], 1)
        s.drums("perc", "bell", "x.x.xx.x.x.x", vel=0.6)
        s.drums("perc", "shaker", "Xoox" * 3, vel=0.5)
        s.drums("perc", "conga", "x..x..x..x..", vel=0.5)
        s.drums("perc", "slap", "...x.....x.x", vel=0.5)
        s.drums("drums", "kick", "x.....x.....", vel=0.6)
        s.arpeggio(s.inst("arp", "pluck"), [0, 2, 1, 3, 1, 2, 0, 2, 1, 3, 2, 1], 62 + A["register"], gate=0.8, size=3)
        s.arpeggio(P["bell"], [3, None, 1, 2, None, 0, 3, None, 1, 2, None, 0], 74 + A["register"], gate=0.8, size=3,
                   stem="lead", vel=0.5)
        s.bassline(s.inst("bass", "bass"), "x..x..x..xx.", 38 + k)
    elif style == 172:                           # Asia-Far East
        s.grid(_tempo(s, 66, 90), 2, 8, rubato=0.03)
        s.harmony(50 + k, _pick(r, ["hirajoshi", "pent_major"], A["pref2"]), [0, 0, 3, 0], 2)
        s.drums("drums", "taiko", "X.......", vel=0.9)
        s.drums("drums", "taiko", "......xx", vel=0.5, prob=0.5)
        s.drums("perc", "rim", "x.x.x.x.", vel=0.45)            # woodblock pulse
        s.arpeggio(s.inst("arp", "pluck"), [0, 1, 2, 3, 4, 3, 2, 1], 62 + A["register"], gate=1.5, size=5)
        s.melody(lead, ["x-------", "x---x---", "x-----x-"], 74 + A["register"], orn_p=0.7,
                 orn_kinds=("slide", "bend"), legato=1.0)
    else:                                        # generic: hand drums in 6/8, hijaz
        s.grid(_tempo(s, 80, 110), 3, 6)
        s.harmony(45 + k, _pick(r, ["hijaz", "harmonic_minor", "phrygian"], A["pref2"]), [0, 1, 0, 6], 1)
        s.drums("perc", "dum", "X..x..", vel=0.8)
        s.drums("perc", "tek", "..x.xx", vel=0.6)
        s.drums("perc", "shaker", "xoxoxo", vel=0.3)
        s.arpeggio(s.inst("arp", "pluck"), [0, 1, 2, 1, 2, 1], 57 + A["register"], gate=1.0, size=3)
        s.melody(lead, ["x-xx-x", "x--x--", "x-----"], 72 + A["register"], orn_p=0.6, orn_kinds=orn, legato=1.0)
    return dict(drums=0.8, perc=1.0, bass=0.7, harm=0.7, lead=0.9, tex=0.5, core=("perc", "lead"))


def compose_experimental(s: Song):
    """No pulse: drones with slow beating, glissandi, clusters, noise bursts and grain clouds at
    random (Poisson) times, wide dynamics, sudden silences. Noise: harsh filtered noise blocks;
    Drone: long beating tones dominate; Electroacoustic: dense micro-grains and sweeps; Improv: free
    runs of fast notes; Sound Collage: abrupt cuts between different textures; Field Recordings:
    wind, chirps, rumble; Minimalism: one short pattern on two voices at slightly different tempi
    (phasing)."""
    r, A, P, subs, S = s.r, s.A, s.A["patches"], s.subs, s.S
    noise, drone, ea, improv, collage, field, minimal = (g in subs for g in (32, 47, 41, 250, 224, 30, 456))
    s.t = None
    T, n = s.seconds, S.n
    root = 40 + A["key"]
    if drone or r.random() < 0.8:
        for _ in range(int(r.integers(2, 4)) + (2 if drone else 0)):
            m = root + float(r.choice([0, 7, 12, 19, 24, 13])) + r.uniform(-0.3, 0.3)
            S.add("tex", r.uniform(-5, T * 0.3), S.note(P[_pick(r, ["pad", "organ", "lead"], A["pref"])], m, T + 5,
                                                       orn=("wobble", float(r.uniform(0.05, 0.3)), float(r.uniform(0.05, 0.3)))),
                  r.uniform(0.3, 1.0))
    if r.random() < 0.7:   # low rumble / room bed
        bed = filt(r.standard_normal(n).astype(np.float32), "low", r.uniform(150, 600))
        S.stems["bass"] += bed / (np.abs(bed).max() + 1e-9) * (0.7 + 0.3 * np.sin(2 * np.pi * np.arange(n) / SR / r.uniform(4, 12))).astype(np.float32)
    rate = (0.5 if drone else 2.0) * (0.5 + 1.5 * A["density"])
    t = r.uniform(0, 1.0)
    while t < T:
        kind = r.choice(["pluck", "gliss", "noise", "grains", "cluster", "bell"], p=[0.25, 0.2, 0.15, 0.15, 0.15, 0.1])
        amp = float(np.exp(r.uniform(np.log(0.25), 0)))
        if kind in ("pluck", "bell"):
            m = float(r.uniform(45, 90))
            S.add("lead", t, S.note(P["pluck" if kind == "pluck" else "bell"], round(m * 4) / 4, r.uniform(0.1, 1.5)), amp)
        elif kind == "gliss":
            m = float(r.uniform(50, 85))
            d = float(r.uniform(0.3, 2.5))
            S.add("lead", t, S.note(P["lead"], m, d, orn=("gliss", float(r.uniform(-12, 12)), d)), amp)
        elif kind == "noise":
            d = r.uniform(0.05, 1.5)
            w = filt(S.noise_slice(int(d * SR)), "band", tuple(sorted(r.uniform(200, 8000, 2) * [1, 1.5])))
            S.add("tex", t, w * np.hanning(len(w)).astype(np.float32) ** 0.3, amp)
        elif kind == "grains":
            for _ in range(int(r.integers(5, 30))):
                g = S.note(P["bell"], round(float(r.uniform(60, 100))), 0.02)
                S.add("perc", t + r.uniform(0, 0.8), g[: int(0.04 * SR)], amp * 0.5)
        else:
            base = float(r.uniform(45, 75))
            for q in range(int(r.integers(3, 6))):
                S.add("harm", t, S.note(P["keys"], base + q + r.uniform(-0.3, 0.3), r.uniform(0.3, 2)), amp * 0.5)
        t += r.exponential(1 / rate) * (1 if r.random() < 0.9 else 4)
    if noise:
        t = 0.0
        while t < T:
            d = r.uniform(0.2, 2.5)
            w = filt(S.noise_slice(int(d * SR)), "band", tuple(sorted(r.uniform(100, 9000, 2) * [1, 1.3])))
            S.add("tex", t, np.tanh(4 * w / (np.abs(w).max() + 1e-9)), float(r.uniform(0.3, 1.0)))
            t += d + (r.uniform(0.05, 1.0) if r.random() < 0.4 else 0)
    if ea:
        for _ in range(int(T * 8)):
            g = S.drum(A["kit"], "click", int(r.integers(3)))
            S.add("perc", r.uniform(0, T), g, float(r.uniform(0.1, 0.8)))
        for _ in range(int(T / 3)):
            S.add("lead", r.uniform(0, T), S.note(P["square"], float(r.uniform(55, 80)), r.uniform(0.5, 2.0),
                                                 orn=("bend", float(r.uniform(-24, 24)), 0.0)), 0.4)
    if improv:
        t = 0.0
        while t < T:
            m = float(r.uniform(50, 80))
            for _ in range(int(r.integers(3, 12))):
                S.add("lead", t, S.note(P["keys"], round(m), r.uniform(0.05, 0.2)), float(r.uniform(0.3, 0.9)))
                m += float(r.choice([-5, -3, -2, -1, 1, 2, 3, 4, 6]))
                t += r.uniform(0.05, 0.18)
            t += r.uniform(0.3, 2.0)
    if field:
        wind = filt(r.standard_normal(n).astype(np.float32), "low", 600)
        wind *= (0.6 + 0.4 * np.sin(2 * np.pi * np.arange(n) / SR / r.uniform(3, 9))).astype(np.float32)
        S.stems["tex"] += 0.3 * wind / (np.abs(wind).max() + 1e-9)
        for _ in range(int(T * 1.5)):      # chirps: fast upward pitch sweeps
            S.add("lead", r.uniform(0, T), S.note(P["lead"], float(r.uniform(88, 100)), 0.06,
                                                 orn=("slide", float(r.uniform(-5, -2)), 0.06)), float(r.uniform(0.1, 0.5)))
    if minimal:
        pat = [degree(root + 24, SCALES["pent_major"], int(d)) for d in r.integers(0, 6, int(r.integers(5, 9)))]
        step0 = 60 / _tempo(s, 140, 200) / 2
        for tempo in (1.0, 1.0 + r.uniform(0.01, 0.03)):     # the second voice drifts ahead
            step = step0 / tempo
            for i in range(int(T / step)):
                S.add("harm", i * step, S.note(P["keys"], pat[i % len(pat)], step * 0.8), 0.6)
    if collage:   # abrupt cuts: gate everything by random on/off segments
        g = np.ones(n, np.float32)
        t = 0.0
        while t < T:
            d = r.uniform(0.5, 3.0)
            if r.random() < 0.4:
                g[int(t * SR):int((t + d) * SR)] = 0.0
            t += d
        for k in S.stems:
            S.stems[k] *= g
    if r.random() < 0.4 and not collage:   # sudden silences
        for _ in range(int(r.integers(1, 4))):
            a = int(r.uniform(0, T) * SR)
            S_len = int(r.uniform(0.5, 2.5) * SR)
            for k in S.stems:
                S.stems[k][a:a + S_len] *= 0.15
    return dict(drums=0.5, perc=0.7, bass=0.6, harm=0.8, lead=0.9, tex=0.9, core=("lead", "tex"))


BEDS = ("drone", "noise", "sub", "air")


def add_beds(s: Song):
    """The artist's background beds, the same menu for every genre (production, not genre):
    a sustained chord in a random register, a band of noise, a sub drone, high 'air'. They fill
    the gaps of some bands, so how much a band fluctuates says less about the genre."""
    S, r, n = s.S, s.r, s.S.n
    t = np.arange(n, dtype=np.float32) / SR
    for kind, level_db, u in s.A["beds"]:
        swell = (0.75 + 0.25 * np.sin(2 * np.pi * t / (4 + 8 * u) + r.uniform(0, 6))).astype(np.float32)
        if kind == "drone":    # root, fifth and octave: one waveform, periodic at half the root
            f0 = float(hz(40 + s.A["key"] + 12 * int(u * 3))) / 2
            amps = np.zeros(2 * KMAX)
            for mult in (2, 3, 4):
                for k in range(1, 2 * KMAX // mult + 1):
                    if k * mult * f0 < SR * 0.45:
                        amps[k * mult - 1] += k ** -s.A["patches"]["pad"]["p_dull"]
            w = _lookup(_table(amps), f0 * t.astype(np.float64))
        elif kind == "noise":
            lo = 100 * 2 ** (u * 6)
            w = filt(S.noise_slice(n), "band", (lo, lo * 3))
        elif kind == "sub":
            w = np.sin(2 * np.pi * float(hz(28 + s.A["key"])) * t)
        else:
            w = filt(S.noise_slice(n), "high", 5000 + 3000 * u)
        w = w[:n] / (np.sqrt(np.mean(w[:n] ** 2)) + 1e-9)
        S.stems["bed"][:len(w)] += (10 ** (level_db / 20)) * w * swell[:len(w)]


COMPOSERS = {"Electronic": compose_electronic, "Experimental": compose_experimental, "Folk": compose_folk,
             "Hip-Hop": compose_hiphop, "Instrumental": compose_instrumental,
             "International": compose_international, "Pop": compose_pop, "Rock": compose_rock}


def render(genre: str, subs, artist_id: int, track_id: int, seed: int, seconds: float,
           out_sr: int = OUT_SR) -> np.ndarray:
    """Synthesise one track: float32 array (samples, 2) at out_sr (or mono at SR if out_sr is None)."""
    A = artist_style(seed, artist_id)
    rng = np.random.default_rng([seed, 11, track_id])
    S = Synth(seconds, rng)
    song = Song(S, rng, A, set(subs), seconds)
    add_beds(song)
    levels = COMPOSERS[genre](song)
    settings = {}
    for st in Synth.STEMS:
        art = A["levels"][st]
        if st in levels.get("core", ()):   # the stems that carry the genre's pattern are never cut
            art = max(art, 1 / art)
        level = levels.get(st, 0.5) * art * 10 ** (rng.uniform(-3, 3) / 20)
        if st == "bed":   # stems are normalised before their level: the bed's level is relative to the mix
            level = 1.7 * 10 ** (max([b[1] for b in A["beds"]] + [-60]) / 20)
        settings[st] = dict(level=level,
                            pan=float(np.clip(A["pans"][st] + rng.normal(0, 0.1), -1, 1)),
                            drive=levels.get(st + "_drive", A["drive"] if st in ("bass", "lead") else
                                             A["harm_drive"] if st == "harm" else 0.0),
                            lp=levels.get(st + "_lp"), rev=0.3 if st != "bass" else 0.05)
    master = dict(tilt=A["tilt"] + rng.normal(0, 0.3),
                  eq=[(c + rng.normal(0, 0.2), w, a + rng.normal(0, 2)) for c, w, a in A["eq"]],
                  lp=levels.get("master_lp", A["lp"]), dyn=A["dyn"], dyn_std=A["dyn_std"], dyn_curve=A["dyn_curve"], match=A["match"], wide=A["wide"],
                  hiss=levels.get("hiss", A["hiss"]) * 10 ** (rng.uniform(-3, 3) / 20), hiss_band=A["hiss_band"],
                  rms=A["rms"] * 10 ** (rng.uniform(-2, 2) / 20),
                  crackle=A["crackle"] if A["crackle_u"] < 0.25 else 0.0)
    y = S.mix(settings, A["rev_t60"], levels.get("rev_mix", A["rev_mix"]), master)
    if out_sr is None:
        return y.mean(0)
    y = soxr.resample(y.T, SR, out_sr)
    return (y / max(1.0, np.abs(y).max() / 0.98)).astype(np.float32)
