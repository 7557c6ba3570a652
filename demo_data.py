"""Synthetic FMA-format demo dataset: procedurally composed music in the exact FMA layout.

FMA is 7.2 GB. This script writes a small stand-in with the same files, columns and quirks, so that
every code path of the project (metadata loading, decoding, the feature cache, failure reporting,
training, evaluation, prediction) runs on a laptop in minutes:

    python demo_data.py                                    # data/demo: 8 genres x 60 tracks x 30 s
    python demo_data.py --out /tmp/tiny --tracks-per-genre 3 --seconds 5
    python main.py --data-dir data/demo                    # the real-FMA code path, unchanged
    python baseline.py --data-dir data/demo                # how hard the demo is (spectrum baseline)

What it writes (the layout of the official release):

    OUT/fma_metadata/genres.csv     the official genres.csv (163 genres), embedded below byte for byte
    OUT/fma_metadata/tracks.csv     the official 52 columns, two-row header + `track_id` row;
                                    subset 'small', artist-filtered 80/10/10 split per genre
    OUT/fma_small/NNN/NNNNNN.mp3    44.1 kHz stereo MP3 clips (VBR), `--seconds` long
    OUT/broken.csv                  the clips broken on purpose, and how
    OUT/demo_manifest.json          arguments + generator version; a rerun with the same arguments
                                    does nothing, other arguments regenerate OUT cleanly

Design (details at the composers below):

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
* Speed: synthesis at 22,050 Hz (the pipeline's rate), upsampled to 44.1 kHz for the MP3; MP3 at
  VBR quality 0.9 (~75 kbit/s; LAME low-passes at ~7.8 kHz, so the top ~15 of 128 mel bands are
  nearly empty); 70% of artists mix in mono (identical channels, which encode ~20% faster), 30%
  in stereo. About 0.6 s of CPU per 30 s clip, most of it in the MP3 encoder.

The genres.csv is embedded in this file (3.9 kB) rather than read from tests/data, so the generator
works from a clean clone with nothing else; tests check it is byte-identical to the official file.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import fft as sfft
from scipy import signal
from tqdm import tqdm

GENERATOR_VERSION = 2  # bump when the output changes, so old demo sets are regenerated

# Defaults of the command line (one place).
DEFAULTS = dict(out="data/demo", tracks_per_genre=60, seconds=30.0, seed=0, workers=None)

SR = 22050          # synthesis sample rate, Hz (the pipeline works at 22,050 Hz)
OUT_SR = 44100      # sample rate of the MP3 files, Hz (like FMA)
MP3_QUALITY = 0.9   # libsndfile compression_level for VBR MP3 (0 best .. 1 smallest); 0.9 ~ 80 kbit/s
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLITS = ("training", "validation", "test")
BROKEN_KINDS = ("empty", "truncated", "short")  # one extra clip of each kind by default
SHORT_SECONDS = 2.0       # length of the 'short' clip
TRUNCATE_FRACTION = 0.3   # the 'truncated' clip keeps this fraction of its bytes

# --------------------------------------------------------------------------------------------
# FMA metadata facts
# --------------------------------------------------------------------------------------------

# Columns of the official tracks.csv (level 0 -> level 1 names, in file order).
COLUMN_GROUPS = {
    "album": ["comments", "date_created", "date_released", "engineer", "favorites", "id",
              "information", "listens", "producer", "tags", "title", "tracks", "type"],
    "artist": ["active_year_begin", "active_year_end", "associated_labels", "bio", "comments",
               "date_created", "favorites", "id", "latitude", "location", "longitude", "members",
               "name", "related_projects", "tags", "website", "wikipedia_page"],
    "set": ["split", "subset"],
    "track": ["bit_rate", "comments", "composer", "date_created", "date_recorded", "duration",
              "favorites", "genre_top", "genres", "genres_all", "information", "interest",
              "language_code", "license", "listens", "lyricist", "number", "publisher", "tags", "title"],
}
COLUMNS = [(g, c) for g, cs in COLUMN_GROUPS.items() for c in cs]

# The official genres.csv of FMA (fma_metadata.zip, rc1), byte for byte.
GENRES_CSV = """\
genre_id,#tracks,parent,title,top_level
1,8693,38,Avant-Garde,38
2,5271,0,International,2
3,1752,0,Blues,3
4,4126,0,Jazz,4
5,4106,0,Classical,5
6,914,38,Novelty,38
7,217,20,Comedy,20
8,868,0,Old-Time / Historic,8
9,1987,0,Country,9
10,13845,0,Pop,10
11,367,14,Disco,14
12,32923,0,Rock,12
13,730,0,Easy Listening,13
14,1499,0,Soul-RnB,14
15,34413,0,Electronic,15
16,304,6,Sound Effects,38
17,12706,0,Folk,17
18,5913,1235,Soundtrack,1235
19,773,14,Funk,14
20,1876,0,Spoken,20
21,8389,0,Hip-Hop,21
22,774,38,Audio Collage,38
25,9261,12,Punk,12
26,1952,12,Post-Rock,12
27,6041,12,Lo-Fi,12
30,3237,38,Field Recordings,38
31,1498,12,Metal,12
32,7268,38,Noise,38
33,2267,17,Psych-Folk,17
36,688,12,Krautrock,12
37,97,4,Jazz: Vocal,4
38,38154,0,Experimental,38
41,6110,38,Electroacoustic,38
42,5723,15,Ambient Electronic,15
43,210,65,Radio Art,20
45,2469,12,Loud-Rock,12
46,573,2,Latin America,2
47,2546,38,Drone,38
49,753,17,Free-Folk,17
53,2071,45,Noise-Rock,12
58,2502,12,Psych-Rock,12
63,178,9,Bluegrass,9
64,563,25,Electro-Punk,12
65,518,20,Radio,20
66,5432,12,Indie-Rock,12
70,2230,12,Industrial,12
71,600,25,No Wave,12
74,1531,4,Free-Jazz,4
76,7144,10,Experimental Pop,10
77,387,2,French,2
79,880,2,Reggae - Dub,2
81,110,92,Afrobeat,2
83,84,21,Nerdcore,21
85,3548,12,Garage,12
86,216,2,Indian,2
88,517,12,New Wave,12
89,1858,25,Post-Punk,12
90,251,53,Sludge,12
92,329,2,African,2
94,1289,17,Freak-Folk,17
97,291,4,Jazz: Out,4
98,795,12,Progressive,12
100,740,21,Alternative Hip-Hop,21
101,196,31,Death-Metal,12
102,176,2,Middle East,2
103,4162,17,Singer-Songwriter,17
107,7206,1235,Ambient,1235
109,1419,25,Hardcore,12
111,1003,25,Power-Pop,12
113,484,26,Space-Rock,12
117,62,2,Polka,2
118,608,2,Balkan,2
125,1511,38,Unclassifiable,38
130,727,2,Europe,2
137,994,9,Americana,9
138,490,20,Spoken Weird,20
166,122,65,Interview,20
167,152,31,Black-Metal,12
169,128,9,Rockabilly,9
170,47,13,Easy Listening: Vocal,13
171,234,2,Brazilian,2
172,118,2,Asia-Far East,2
173,4,86,N. Indian Traditional,2
174,17,86,South Indian Traditional,2
175,0,86,Bollywood,2
176,23,2,Pacific,2
177,72,2,Celtic,2
178,0,4,Be-Bop,4
179,104,4,Big Band/Swing,4
180,161,17,British Folk,17
181,2140,15,Techno,15
182,1482,15,House,15
183,2809,15,Glitch,15
184,1013,15,Minimal Electronic,15
185,511,15,Breakcore - Hard,15
186,682,38,Sound Poetry,38
187,292,5,20th Century Classical,5
188,301,20,Poetry,20
189,26,65,Talk Radio,20
214,40,92,North African,2
224,1916,38,Sound Collage,38
232,47,2,Flamenco,2
236,3472,15,IDM,15
240,1231,297,Chiptune,15
247,2957,38,Musique Concrete,38
250,4261,38,Improv,38
267,360,1235,New Age,1235
286,1751,15,Trip-Hop,15
296,1414,15,Dance,15
297,2208,15,Chip Music,15
311,440,13,Lounge,13
314,482,12,Goth,12
322,630,5,Composed Music,5
337,500,15,Drum & Bass,15
359,762,12,Shoegaze,12
360,201,6,Kid-Friendly,38
361,175,109,Thrash,12
362,1835,10,Synth Pop,10
374,9,20,Banter,20
377,1,19,Deep Funk,14
378,177,20,Spoken Word,20
400,823,182,Chill-out,15
401,189,181,Bigbeat,15
404,265,85,Surf,12
428,73,20,Radio Theater,20
439,314,31,Grindcore,12
440,116,12,Rock Opera,12
441,161,5,Opera,5
442,170,5,Chamber Music,5
443,216,5,Choral Music,5
444,25,5,Symphony,5
456,1392,38,Minimalism,38
465,18,20,Musical Theater,20
468,1144,15,Dubstep,15
491,78,468,Skweee,15
493,4,651,Western Swing,9
495,2061,15,Downtempo,15
502,67,46,Cumbia,2
504,114,2,Latin,2
514,1414,38,Sound Art,38
524,112,130,Romany (Gypsy),2
538,338,18,Compilation,1235
539,638,21,Rap,21
542,735,21,Breakbeat,21
567,66,3,Gospel,3
580,202,21,Abstract Hip-Hop,21
602,94,79,Reggae - Dancehall,2
619,115,130,Spanish,2
651,79,9,Country & Western,9
659,1239,5,Contemporary Classical,5
693,56,21,Wonky,21
695,258,15,Jungle,15
741,57,130,Klezmer,2
763,268,16,Holiday,38
808,12,46,Salsa,2
810,120,13,Nu-Jazz,13
811,1192,21,Hip-Hop Beats,21
906,107,4,Modern Jazz,4
1032,60,102,Turkish,2
1060,30,46,Tango,2
1156,26,130,Fado,2
1193,72,763,Christmas,38
1235,14938,0,Instrumental,1235
"""

# The 8 genres of fma_small (title -> genre_id) and the sub-genres each composer knows how to play.
# Sub-genres are real FMA ids; each one changes the sound (see the composers).
TOP_GENRES = {"Electronic": 15, "Experimental": 38, "Folk": 17, "Hip-Hop": 21,
              "Instrumental": 1235, "International": 2, "Pop": 10, "Rock": 12}
SUBGENRES = {
    "Electronic": [181, 182, 236, 240, 296],          # Techno, House, IDM, Chiptune, Dance
    "Experimental": [32, 47, 41, 250, 224, 30, 456],  # Noise, Drone, Electroacoustic, Improv,
                                                      # Sound Collage, Field Recordings, Minimalism
    "Folk": [103, 180, 33, 49, 94],                   # Singer-Songwriter, British Folk, Psych-,
                                                      # Free-, Freak-Folk
    "Hip-Hop": [539, 811, 100, 542, 693],             # Rap, Hip-Hop Beats, Alternative, Breakbeat, Wonky
    "Instrumental": [18, 107, 267],                   # Soundtrack, Ambient, New Age
    "International": [46, 502, 79, 118, 86, 102, 92, 172],  # Latin America, Cumbia, Reggae - Dub,
                                                      # Balkan, Indian, Middle East, African, Asia-Far East
    "Pop": [362, 76],                                 # Synth Pop, Experimental Pop
    "Rock": [25, 31, 26, 58, 27, 66],                 # Punk, Metal, Post-Rock, Psych-Rock, Lo-Fi, Indie-Rock
}
# International styles are exclusive (one rhythm family per track).
EXCLUSIVE = {"International": [46, 502, 79, 118, 86, 102, 92, 172]}

LICENSES = ["Attribution-NonCommercial-ShareAlike 3.0 International",
            "Attribution-NonCommercial-NoDerivatives (aka Music Sharing) 3.0 International",
            "Attribution-Noncommercial-No Derivative Works 3.0 United States",
            "Attribution-Noncommercial-Share Alike 3.0 United States",
            "Attribution 4.0 International", "Attribution-NonCommercial 3.0 International"]
ADJ = ["Velvet", "Hollow", "Electric", "Silver", "Paper", "Quiet", "Golden", "Broken", "Lunar",
       "Wild", "Crimson", "Static", "Northern", "Glass", "Neon", "Distant", "Wooden", "Frozen",
       "Secret", "Cosmic", "Rusty", "Little", "Sleepy", "Bright", "Hidden", "Slow", "Tender"]
NOUN = ["Owls", "Rivers", "Machines", "Foxes", "Lanterns", "Harbors", "Signals", "Gardens",
        "Pilots", "Tigers", "Echoes", "Ghosts", "Satellites", "Mirrors", "Islands", "Wolves",
        "Cities", "Bells", "Waves", "Saints", "Orchards", "Engines", "Moths", "Comets", "Fields"]
FIRST = ["Anna", "Marco", "Lena", "Kofi", "Yuki", "Omar", "Sofia", "Jonas", "Priya", "Mateo",
         "Ines", "Tariq", "Elena", "Nils", "Amara", "Hugo", "Mira", "Diego", "Zara", "Felix",
         "Aiko", "Ravi", "Lucia", "Emil", "Noor", "Pablo", "Greta", "Sami", "Ada", "Tomas"]
LAST = ["Lindqvist", "Okafor", "Moreau", "Tanaka", "Haddad", "Novak", "Silva", "Brandt", "Reyes",
        "Kowalski", "Mensah", "Costa", "Varga", "Ibrahim", "Berg", "Santos", "Petrov", "Nakamura",
        "Dubois", "Kaur", "Fischer", "Andersen", "Rossi", "Yilmaz", "Ortega", "Kim", "Walsh"]
PLACES = [("Providence, RI", 41.824, -71.4128), ("Philadelphia, PA", 39.9526, -75.1652),
          ("Brooklyn, NY", 40.6782, -73.9442), ("Portland, OR", 45.5152, -122.6784),
          ("Berlin, Germany", 52.52, 13.405), ("London, UK", 51.5074, -0.1278),
          ("Montreal, QC", 45.5017, -73.5673), ("Lagos, Nigeria", 6.5244, 3.3792),
          ("Mexico City", 19.4326, -99.1332), ("Tokyo, Japan", 35.6762, 139.6503),
          ("Lisbon, Portugal", 38.7223, -9.1393), ("Melbourne, Australia", -37.8136, 144.9631),
          ("Austin, TX", 30.2672, -97.7431), ("Sao Paulo, Brazil", -23.5505, -46.6333),
          ("Istanbul, Turkey", 41.0082, 28.9784), ("Mumbai, India", 19.076, 72.8777),
          ("Chicago, IL", 41.8781, -87.6298), ("Glasgow, Scotland", 55.8642, -4.2518)]


def parse_genres(text: str = GENRES_CSV) -> dict:
    """genre_id -> (parent, title, top_level) from the embedded genres.csv."""
    out = {}
    for row in list(csv.reader(io.StringIO(text)))[1:]:
        out[int(row[0])] = (int(row[2]), row[3], int(row[4]))
    return out


GENRE_TABLE = parse_genres()


def with_parents(ids) -> list:
    """The ids plus all their ancestors (genres_all is closed under parents), sorted."""
    out = set()
    for g in ids:
        while g != 0 and g not in out:
            out.add(g)
            g = GENRE_TABLE[g][0]
    return sorted(out)


def audio_path(root: Path, track_id: int) -> Path:
    """FMA layout: fma_small/NNN/NNNNNN.mp3 (6-digit id, folder = its first 3 digits)."""
    tid = f"{track_id:06d}"
    return Path(root) / "fma_small" / tid[:3] / f"{tid}.mp3"


# --------------------------------------------------------------------------------------------
# Metadata (artists, albums, tracks, split)
# --------------------------------------------------------------------------------------------

def split_sizes(n: int) -> tuple:
    """Tracks per split for one genre: 80/10/10, at least one validation/test track from n = 3."""
    if n < 3:
        return (n, 0, 0) if n < 2 else (1, 0, 1)
    n_val = max(1, int(round(n * SPLIT_FRACTIONS[1])))
    n_test = max(1, int(round(n * SPLIT_FRACTIONS[2])))
    return n - n_val - n_test, n_val, n_test


def _date(rng, start_year=2008, end_year=2016):
    y = int(rng.integers(start_year, end_year + 1))
    return np.datetime64(f"{y}-01-01T00:00:00") + np.timedelta64(int(rng.integers(0, 365 * 86400)), "s")


def _fmt(d) -> str:
    return str(d).replace("T", " ")


def _artist_name(rng) -> str:
    form = int(rng.integers(6))
    a, n = ADJ[rng.integers(len(ADJ))], NOUN[rng.integers(len(NOUN))]
    f, l = FIRST[rng.integers(len(FIRST))], LAST[rng.integers(len(LAST))]
    return [f"The {a} {n}", f"{f} {l}", f"DJ {f}", f"{a} {n}", f"{f} {l} Trio", f"{l} & the {n}"][form]


def _title(rng) -> str:
    a, n, n2 = ADJ[rng.integers(len(ADJ))], NOUN[rng.integers(len(NOUN))], NOUN[rng.integers(len(NOUN))]
    f = FIRST[rng.integers(len(FIRST))]
    return [f"{a} {n}", f"{n} of the {n2}", f"Song for {f}", f"{a}", f"{n} ({a} Mix)",
            f"{a} {n} {int(rng.integers(2, 9))}"][int(rng.integers(6))]


def _partition(rng, n: int, lo: int = 2, hi: int = 8) -> list:
    """Split n tracks into artist groups of lo..hi tracks (the last one takes the rest)."""
    sizes = []
    while n > 0:
        k = min(n, int(rng.integers(lo, hi + 1)))
        if 0 < n - k < lo:
            k = n
        sizes.append(k)
        n -= k
    return sizes


def make_metadata(tracks_per_genre: int, seed: int, broken: bool = True) -> list:
    """All tracks as dicts (column tuple -> value, plus private keys starting with '_').

    Per genre, the split sizes are fixed first (80/10/10) and artists are made inside one split,
    so the split is artist-filtered and stratified by genre exactly. Broken clips (if any) are
    extra training tracks of existing artists, drawn from a separate random stream so that
    `--no-broken` leaves every other track unchanged.
    """
    rng = np.random.default_rng([seed, 1])
    artists, tracks = [], []
    next_artist, next_album = 1, 1
    for gi, (gname, gid) in enumerate(TOP_GENRES.items()):
        subs = SUBGENRES[gname]
        order = list(rng.permutation(len(subs)))   # artists' main sub-genre goes round-robin (in a random
        k_artist = 0                               # order), so the training artists cover all of them
        for split, n in zip(SPLITS, split_sizes(tracks_per_genre)):
            for size in _partition(rng, n, *((2, 6) if split == "training" else (1, 3))):
                place = PLACES[rng.integers(len(PLACES))]
                name = _artist_name(rng)
                created = _date(rng, 2008, 2014)
                main = subs[order[k_artist % len(subs)]]
                k_artist += 1
                others = [g for g in subs if g != main]
                prefs = [main] + ([others[rng.integers(len(others))]] if others and rng.random() < 0.4 else [])
                artist = dict(id=next_artist, name=name, genre=gname, split=split, prefs=prefs,
                              place=place, created=created, albums=[])
                next_artist += int(rng.integers(1, 40))
                artists.append(artist)
                n_albums = 1 if size < 3 else int(rng.integers(1, 3))
                album_of = np.sort(rng.integers(0, n_albums, size))
                for a in range(n_albums):
                    a_created = created + np.timedelta64(int(rng.integers(0, 900 * 86400)), "s")
                    artist["albums"].append(dict(
                        id=next_album, title=_title(rng), created=a_created,
                        released=a_created - np.timedelta64(int(rng.integers(0, 400)), "D"),
                        type=["Album", "Album", "Album", "Single Tracks", "Live Performance"][rng.integers(5)],
                        n=int((album_of == a).sum()) + int(rng.integers(0, 8)), listens=int(rng.lognormal(8, 1.2)),
                        favorites=int(rng.integers(0, 12)), info="<p></p>" if rng.random() < 0.5 else ""))
                    next_album += int(rng.integers(1, 30))
                for k in range(size):
                    tracks.append(_track_row(rng, artist, artist["albums"][album_of[k]], k + 1, gname, gid))
    # FMA ids are sparse and interleave genres: shuffle, then increasing ids with random gaps.
    order = rng.permutation(len(tracks))
    tid = 0
    gap = max(2, int(150000 / max(1, len(tracks))))
    for i in order:
        tid += int(rng.integers(2, 2 * gap))
        tracks[i]["_id"] = tid
    if broken:
        brng = np.random.default_rng([seed, 2])
        used = {t["_id"] for t in tracks}
        genres = brng.choice(list(TOP_GENRES), size=len(BROKEN_KINDS), replace=False)
        for kind, gname in zip(BROKEN_KINDS, genres):
            cands = [a for a in artists if a["genre"] == gname and a["split"] == "training"]
            artist = cands[brng.integers(len(cands))]
            row = _track_row(brng, artist, artist["albums"][0], artist["albums"][0]["n"] + 1,
                             gname, TOP_GENRES[gname])
            tid = int(tracks[brng.integers(len(tracks))]["_id"]) + 1
            while tid in used:
                tid += 1
            used.add(tid)
            row["_id"], row["_broken"] = tid, kind
            tracks.append(row)
    tracks.sort(key=lambda t: t["_id"])
    return tracks


def _track_row(rng, artist, album, number, gname, gid) -> dict:
    """One row of tracks.csv for a track of `artist` on `album`."""
    subs = SUBGENRES[gname]
    u = rng.random()
    if u < 0.2:
        chosen = []
    else:
        k = 1 if u < 0.8 else 2
        pool = list(artist["prefs"]) if rng.random() < 0.8 else list(subs)
        chosen = [int(g) for g in rng.choice(pool, size=min(k, len(pool)), replace=False)]
        if gname in EXCLUSIVE:  # one rhythm family per track
            chosen = chosen[:1]
    genres = sorted(chosen) if chosen else [gid]
    if chosen and rng.random() < 0.3:
        genres = sorted([gid] + chosen)
    genres_all = with_parents(genres)
    created = album["created"] + np.timedelta64(int(rng.integers(60, 86400)), "s")
    place, lat, lon = artist["place"]
    slug = "".join(ch for ch in artist["name"].lower() if ch.isalnum())
    members = "" if rng.random() < 0.4 else "\n".join(
        f"{FIRST[i]} {LAST[j]}" for i, j in zip(rng.integers(0, len(FIRST), 3), rng.integers(0, len(LAST), 3)))
    listens = int(rng.lognormal(6.5, 1.2))
    row = {
        ("album", "comments"): int(rng.integers(0, 3)),
        ("album", "date_created"): _fmt(album["created"]),
        ("album", "date_released"): _fmt(album["released"])[:10] + " 00:00:00",
        ("album", "engineer"): "",
        ("album", "favorites"): album["favorites"],
        ("album", "id"): album["id"],
        ("album", "information"): album["info"],
        ("album", "listens"): album["listens"],
        ("album", "producer"): "",
        ("album", "tags"): "[]",
        ("album", "title"): album["title"],
        ("album", "tracks"): album["n"],
        ("album", "type"): album["type"],
        ("artist", "active_year_begin"): f"{int(str(artist['created'])[:4]) - 2}-01-01 00:00:00",
        ("artist", "active_year_end"): "",
        ("artist", "associated_labels"): "",
        ("artist", "bio"): f"<p>{artist['name']} makes {gname.lower()} music in {place}.</p>",
        ("artist", "comments"): int(rng.integers(0, 4)),
        ("artist", "date_created"): _fmt(artist["created"]),
        ("artist", "favorites"): int(rng.integers(0, 30)),
        ("artist", "id"): artist["id"],
        ("artist", "latitude"): lat,
        ("artist", "location"): place,
        ("artist", "longitude"): lon,
        ("artist", "members"): members,
        ("artist", "name"): artist["name"],
        ("artist", "related_projects"): "",
        ("artist", "tags"): str([artist["name"].lower(), gname.lower()]),
        ("artist", "website"): f"http://www.example.com/{slug}",
        ("artist", "wikipedia_page"): "",
        ("set", "split"): artist["split"],
        ("set", "subset"): "small",
        ("track", "bit_rate"): int(rng.choice([320000, 256000, 256000, 192000, 128000])),
        ("track", "comments"): 0,
        ("track", "composer"): "",
        ("track", "date_created"): _fmt(created),
        ("track", "date_recorded"): "" if rng.random() < 0.3 else _fmt(created)[:10] + " 00:00:00",
        ("track", "duration"): int(rng.integers(90, 420)),
        ("track", "favorites"): int(rng.integers(0, 6)),
        ("track", "genre_top"): gname,
        ("track", "genres"): str(genres),
        ("track", "genres_all"): str(genres_all),
        ("track", "information"): "",
        ("track", "interest"): int(listens * rng.uniform(1.5, 4)),
        ("track", "language_code"): "en" if rng.random() < 0.7 else "",
        ("track", "license"): LICENSES[rng.integers(len(LICENSES))],
        ("track", "listens"): listens,
        ("track", "lyricist"): "",
        ("track", "number"): number,
        ("track", "publisher"): "",
        ("track", "tags"): "[]",
        ("track", "title"): _title(rng),
        "_artist": artist["id"], "_genre": gname, "_subs": [int(g) for g in chosen],
        "_broken": None,
    }
    return row


def write_tracks_csv(tracks: list, path: Path) -> None:
    """tracks.csv exactly like the official file: two header rows, a `track_id` row, then data."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([""] + [g for g, _ in COLUMNS])
        w.writerow([""] + [c for _, c in COLUMNS])
        w.writerow(["track_id"] + [""] * len(COLUMNS))
        for t in tracks:
            w.writerow([t["_id"]] + [t[c] for c in COLUMNS])


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
                for j, i in enumerate(ons):
                    nxt = ons[j + 1] if j + 1 < len(ons) else len(cell)
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
    fill = "x.x.x.x.xxxxxxxx"
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
    pad_bars = s.bar_steps * 2
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


# --------------------------------------------------------------------------------------------
# Files: clips, broken clips, metadata, manifest
# --------------------------------------------------------------------------------------------

def _encode_mp3(y: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="MP3", subtype="MPEG_LAYER_III", compression_level=MP3_QUALITY,
             bitrate_mode="VARIABLE")
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def make_clip(job: dict) -> tuple:
    """Worker: synthesise, encode and write one clip (or its broken version). Returns (id, note)."""
    path = Path(job["path"])
    if path.exists():                         # resumed run: this clip was finished before
        return job["id"], "exists"
    kind = job["broken"]
    if kind == "empty":
        _atomic_write(path, b"")
        return job["id"], "empty file (0 bytes)"
    seconds = SHORT_SECONDS if kind == "short" else job["seconds"]
    y = render(job["genre"], job["subs"], job["artist"], job["id"], job["seed"], seconds)
    data = _encode_mp3(y, OUT_SR)
    if kind == "truncated":
        cut = int(len(data) * TRUNCATE_FRACTION) + 137      # mid-frame
        _atomic_write(path, data[:cut])
        return job["id"], f"truncated MP3: {cut} of {len(data)} bytes, header declares {seconds:g} s"
    _atomic_write(path, data)
    return job["id"], "ok" if kind is None else f"short clip: {seconds:g} s"


def _manifest_args(args) -> dict:
    return dict(version=GENERATOR_VERSION, tracks_per_genre=args.tracks_per_genre, seconds=args.seconds,
                seed=args.seed, broken=not args.no_broken)


def _clean(out: Path) -> None:
    """Remove what a previous generation wrote (and a feature cache built from it)."""
    for name in ("fma_small", "fma_metadata", "cache"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    for name in ("broken.csv", "demo_manifest.json"):
        if (out / name).exists():
            (out / name).unlink()


def generate(args) -> Path:
    out = Path(args.out)
    manifest_path = out / "demo_manifest.json"
    wanted = _manifest_args(args)
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("args") == wanted and old.get("complete"):
            missing = [p for p in old["files"] if not (out / p).exists()]
            if not missing:
                print(f"{out}: demo set already generated with these arguments ({len(old['files'])} clips); "
                      f"nothing to do")
                return out
            print(f"{out}: {len(missing)} clips missing, regenerating them")
        elif old.get("args") != wanted:
            print(f"{out}: previous demo set had other arguments {old.get('args')}; regenerating cleanly")
            _clean(out)
    elif (out / "fma_small").exists() or (out / "fma_metadata").exists():
        print(f"{out}: existing files without a manifest; regenerating cleanly")
        _clean(out)
    t0 = time.time()
    tracks = make_metadata(args.tracks_per_genre, args.seed, broken=not args.no_broken)
    files = [str(audio_path(Path("."), t["_id"])) for t in tracks]
    broken = [(t["_id"], t["_broken"]) for t in tracks if t["_broken"]]
    out.mkdir(parents=True, exist_ok=True)
    manifest = dict(args=wanted, complete=False, n_tracks=len(tracks), files=files,
                    broken={str(i): k for i, k in broken})
    manifest_path.write_text(json.dumps(manifest, indent=1))
    meta = out / "fma_metadata"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "genres.csv").write_text(GENRES_CSV, encoding="utf-8", newline="")
    write_tracks_csv(tracks, meta / "tracks.csv.part")
    os.replace(meta / "tracks.csv.part", meta / "tracks.csv")
    jobs = [dict(path=str(out / f), id=t["_id"], genre=t["_genre"], subs=t["_subs"], artist=t["_artist"],
                 seed=args.seed, seconds=args.seconds, broken=t["_broken"]) for f, t in zip(files, tracks)]
    workers = args.workers or os.cpu_count() or 1
    notes = {}
    bar = tqdm(total=len(jobs), desc="demo clips", unit="clip")
    if workers <= 1:
        for j in jobs:
            i, note = make_clip(j)
            notes[i] = note
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as ex:
            for i, note in ex.map(make_clip, jobs, chunksize=2):
                notes[i] = note
                bar.update()
    bar.close()
    with open(out / "broken.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["track_id", "file", "kind", "detail"])
        for i, kind in broken:
            w.writerow([i, str(audio_path(Path("."), i)), kind, notes.get(i, "")])
    manifest["complete"] = True
    manifest_path.write_text(json.dumps(manifest, indent=1))
    n_ok = len(tracks) - len(broken)
    print(f"{out}: {n_ok} clips + {len(broken)} broken on purpose, {len(set(t['_artist'] for t in tracks))} artists, "
          f"in {time.time() - t0:.0f} s")
    for i, kind in broken:
        print(f"  broken {i:06d}: {kind}: {notes.get(i)}")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=DEFAULTS["out"], help="output folder (FMA root: fma_metadata/, fma_small/)")
    p.add_argument("--tracks-per-genre", type=int, default=DEFAULTS["tracks_per_genre"],
                   help="usable clips per genre (8 genres; split 80/10/10 by artist)")
    p.add_argument("--seconds", type=float, default=DEFAULTS["seconds"], help="clip length, in seconds")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="random seed (same seed -> same files)")
    p.add_argument("--workers", type=int, default=DEFAULTS["workers"],
                   help="parallel processes (default: all cores); does not change the output")
    p.add_argument("--no-broken", action="store_true",
                   help="do not add the broken clips (empty, truncated, under 3 s)")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.tracks_per_genre < 1 or args.seconds <= 0:
        raise SystemExit("--tracks-per-genre must be >= 1 and --seconds > 0")
    generate(args)


if __name__ == "__main__":
    main()
