"""Synthetic FMA-format demo dataset: procedurally composed music in the exact FMA layout.

The package behind `python demo_data.py` (the entry point at the top of the repository; its docstring
has the usage). One module per part:

    fma_metadata.py   the FMA facts (tracks.csv columns, genres, audio layout) and the metadata of a
                      set: artists, albums, tracks, artist-filtered split, broken-clip tracks, tracks.csv
    genres.csv        the official genres.csv of FMA, byte for byte (origin and licence at the end)
    synth.py          the synthesizer: instruments, drums, effects, mixing and mastering
    composers.py      the genre composers, the artist style, render(): the audio of one track
    dataset.py        the set on disk: clips, broken clips, broken.csv, manifest; generate()
    cli.py            the command line: build_parser(), main(argv)

What it writes (the layout of the official release):

    OUT/fma_metadata/genres.csv     the official genres.csv (163 genres): genres.csv here, byte for byte
    OUT/fma_metadata/tracks.csv     the official 52 columns, two-row header + `track_id` row;
                                    subset 'small', artist-filtered 80/10/10 split per genre
    OUT/fma_small/NNN/NNNNNN.mp3    44.1 kHz stereo MP3 clips (VBR), `--seconds` long
    OUT/broken.csv                  the clips broken on purpose, and how
    OUT/demo_manifest.json          arguments + generator version; a rerun with the same arguments
                                    does nothing, other arguments regenerate OUT cleanly

Design (details in composers.py and synth.py):

* Genres are the 8 of fma_small. Each is a composer: tempo range, meter, drum patterns, bass and
  chord rhythms, melody rules (scale, motion, repetition, ornaments), textures and effects.
  The genre lives mostly in *time*: Electronic = four-on-the-floor kick, off-beat hats, side-chain
  pumping, 16th arpeggios; Rock = straight 8th power-chord chugging, backbeat, 4-bar fills;
  Hip-Hop = swung 16ths, syncopated boom-bap kick, late snare, long gliding 808 notes, rapped
  syllables; Pop = syncopated 3-3-2 bass, chord changes every bar, a sung hook repeating every
  2 bars; Folk = boom-chick (bass on the downbeats) with strummed or fingerpicked guitar in 3/4,
  6/8 or 4/4, little or no drum kit; Instrumental = slow rubato broken chords with pedal, swelling
  pads, long melody notes, a held fermata at every phrase end; International = clave / one-drop /
  7/8 / tala / maqsum / 12/8 bell rhythms, hand drums with pitch bends, ornamented melodies
  (trills, slides, gamak) in non-western scales; Experimental = no pulse: drones, glissandi,
  noise and grain events at random times.
* Sub-genres (real FMA ids, parents from genres.csv) change the sound: e.g. Techno drops the pads
  and adds a 3-step polymetric loop, Metal double-kick 16ths and gallops, Punk a polka beat, Rap
  dense syllables, Reggae - Dub the one-drop and echoes, Drone long beating tones. A track has 0-2
  sub-genres (artists favour one; round-robin, so training artists cover them all); `genres_all`
  is the set closed under parents.
* Average spectra must not give the genre away (baseline.py measures it). So everything static
  is production, drawn per artist from pools shared by all genres: the instrument of each role
  (the genre's typical one only 35% of the time), register, drum-kit tuning, drive, reverb, stem
  levels (the stems carrying the genre's pattern are never turned down), background beds (drone,
  noise, sub, air), vinyl crackle, noise floor; and a mastering chain that pulls each track's
  long-term spectrum, each band's mean dB and each band's dB contrast towards the artist's random
  targets (EQ matching + multiband dynamics) and sets loudness by mean dB. Timing stays untouched.
  Artists keep all of this across their tracks, so the artist-filtered split matters; every track
  also varies on its own (tempo, key, patterns, arrangement dropouts).
* A few clips are broken on purpose (like 6 clips of the real fma_small): an empty file, an MP3 cut
  mid-file (its header still declares the full length), a clip under 3 s. `--no-broken` turns it off.
  They are extra training tracks, so the usable set stays 8 x tracks-per-genre.
* Deterministic: every track is synthesised from its own random stream keyed by (seed, track id),
  artist style by (seed, artist id), metadata by the seed; the output does not depend on --workers.
  The metadata is the same byte for byte on every machine; the MP3 bytes are the same on one machine,
  but numpy picks its SIMD kernels by CPU, so on another CPU they can differ in the last bits of the
  floats (decoded band energies within 0.1 dB).
* Speed: synthesis at 22,050 Hz (the pipeline's rate), upsampled to 44.1 kHz for the MP3; MP3 at
  VBR quality 0.9 (~75 kbit/s; LAME low-passes at ~7.8 kHz, so the top ~15 of 128 mel bands are
  nearly empty); 70% of artists mix in mono (identical channels, which encode ~20% faster), 30%
  in stereo. About 0.6 s of CPU per 30 s clip, most of it in the MP3 encoder.

genres.csv is the official file of the FMA dataset (fma_metadata.zip, release rc1), kept in the package
(3.9 kB) rather than read from tests/data, so the generator works from a clean clone with nothing else;
tests check it is byte-identical to the official file. FMA: Defferrard, Benzi, Vandergheynst, Bresson,
"FMA: A Dataset for Music Analysis", ISMIR 2017, https://github.com/mdeff/fma ; the FMA metadata is
released under the Creative Commons Attribution 4.0 International License (CC BY 4.0,
https://creativecommons.org/licenses/by/4.0).
"""
from .cli import DEFAULTS, build_parser, main
from .composers import COMPOSERS, artist_style, render
from .dataset import GENERATOR_VERSION, generate, make_clip
from .fma_metadata import (BROKEN_KINDS, GENRES_CSV, SPLITS, SUBGENRES, TOP_GENRES, audio_path, make_metadata,
                           split_sizes, write_tracks_csv)
from .synth import OUT_SR, SR, Synth

__all__ = ["BROKEN_KINDS", "COMPOSERS", "DEFAULTS", "GENERATOR_VERSION", "GENRES_CSV", "OUT_SR", "SPLITS", "SR",
           "SUBGENRES", "Synth", "TOP_GENRES", "artist_style", "audio_path", "build_parser", "generate", "main",
           "make_clip", "make_metadata", "render", "split_sizes", "write_tracks_csv"]
