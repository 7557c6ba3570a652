"""FMA metadata of the demo set: the facts of the official files, and the tables of one demo set.

The official tracks.csv columns and genres.csv (the data file genres.csv beside this module: see the
package docstring for its origin and licence), the 8 genres of fma_small and the sub-genres the composers
play, the FMA audio layout; and the metadata of one demo set drawn from a seed: artists, albums, tracks,
the artist-filtered 80/10/10 split, the extra tracks of the clips broken on purpose, and tracks.csv
written exactly like the official file.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLITS = ("training", "validation", "test")
BROKEN_KINDS = ("empty", "truncated", "short")  # one extra clip of each kind by default

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


# The official genres.csv of FMA (fma_metadata.zip, rc1), byte for byte: the data file beside this module.
GENRES_CSV = (Path(__file__).parent / "genres.csv").read_bytes().decode("utf-8")

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

def split_sizes(n: int, fractions: tuple = SPLIT_FRACTIONS) -> tuple:
    """Tracks per split for one genre: `fractions` (training, validation, test; 80/10/10 by default),
    at least one validation/test track from n = 3."""
    if n < 3:
        return (n, 0, 0) if n < 2 else (1, 0, 1)
    n_val = max(1, int(round(n * fractions[1])))
    n_test = max(1, int(round(n * fractions[2])))
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


def make_metadata(tracks_per_genre: int, seed: int, broken: bool = True, split: tuple = SPLIT_FRACTIONS) -> list:
    """All tracks as dicts (column tuple -> value, plus private keys starting with '_').

    Per genre, the split sizes are fixed first (`split`, 80/10/10 by default) and artists are made inside one split,
    so the split is artist-filtered and stratified by genre exactly. Broken clips (if any) are
    extra training tracks of existing artists, drawn from a separate random stream so that
    `--no-broken` leaves every other track unchanged.
    """
    rng = np.random.default_rng([seed, 1])
    artists, tracks = [], []
    next_artist, next_album = 1, 1
    for gname, gid in TOP_GENRES.items():
        subs = SUBGENRES[gname]
        order = list(rng.permutation(len(subs)))   # artists' main sub-genre goes round-robin (in a random
        k_artist = 0                               # order), so the training artists cover all of them
        for split_name, n in zip(SPLITS, split_sizes(tracks_per_genre, split)):
            for size in _partition(rng, n, *((2, 6) if split_name == "training" else (1, 3))):
                place = PLACES[rng.integers(len(PLACES))]
                name = _artist_name(rng)
                created = _date(rng, 2008, 2014)
                main = subs[order[k_artist % len(subs)]]
                k_artist += 1
                others = [g for g in subs if g != main]
                prefs = [main] + ([others[rng.integers(len(others))]] if others and rng.random() < 0.4 else [])
                artist = dict(id=next_artist, name=name, genre=gname, split=split_name, prefs=prefs,
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

