#!/usr/bin/env bash
# download_data.sh -- download, verify and extract the FMA dataset (Free Music Archive).
#
# Fetches fma_metadata.zip and fma_<subset>.zip, checks each against the official SHA-1,
# and extracts them with their folders intact:
#     DIR/fma_metadata/tracks.csv, DIR/fma_metadata/genres.csv, ...
#     DIR/fma_small/000/000002.mp3, ...
#
# Usage:
#     bash download_data.sh [small|medium|large|full] [--data-dir DIR] [--base-url URL]
#     bash download_data.sh --help
#
#   small|medium|large|full  which audio subset to fetch (default: small). Official zip sizes:
#                            metadata 342 MiB, small 7.2 GiB, medium 22 GiB, large 93 GiB,
#                            full 879 GiB; extraction needs about as much again.
#   --data-dir DIR           where zips and extracted folders go (default: data, relative to the
#                            current directory)
#   --base-url URL           where the zips are served (default: https://os.unil.cloud.switch.ch/fma/)
#
# Safe to interrupt and rerun:
#   - downloads go to DIR/NAME.zip.part and are resumed (HTTP Range) by the next attempt or run;
#     the file is renamed to DIR/NAME.zip only once complete;
#   - a zip whose SHA-1 does not match is deleted (so a rerun downloads it again) and the run fails;
#   - extraction happens in DIR/.NAME.extracting and is moved to DIR/NAME only on success, with
#     the marker DIR/NAME/.complete (holding the zip's SHA-1) written just before the move;
#   - a rerun skips every part whose marker is present: after a full success it downloads nothing.
#   Once DIR/NAME/.complete exists, DIR/NAME.zip is no longer needed and may be deleted.
#
# Environment overrides (mainly for mirrors and tests):
#   FMA_BASE_URL        default for --base-url
#   FMA_DATA_DIR        default for --data-dir
#   FMA_SHA1_METADATA, FMA_SHA1_SMALL, FMA_SHA1_MEDIUM, FMA_SHA1_LARGE, FMA_SHA1_FULL
#                       expected SHA-1 of each zip (default: the official ones, FMA rc1)
#   FMA_RETRIES         download attempts per file before giving up (default: 5); each
#                       attempt resumes where the previous one stopped
#   FMA_RETRY_DELAY     seconds to wait between attempts (default: 10)
#   FMA_EXTRACTOR       auto (default: 7-Zip if installed, else Python), 7z, or python
#   FMA_PYTHON          Python 3 interpreter used for extraction (default: python3, else python)
#
# Needs bash, curl, and sha1sum or shasum. Extraction uses 7-Zip (7z/7za/7zz) when present,
# else Python's zipfile (the FMA zips use bzip2 compression, which some unzip builds reject).
# Exit status: 0 on success (or nothing to do), 2 on bad usage, 1 on any other failure.

set -euo pipefail

readonly DEFAULT_BASE_URL="https://os.unil.cloud.switch.ch/fma/"

usage() {
    cat <<'EOF'
Usage: bash download_data.sh [small|medium|large|full] [--data-dir DIR] [--base-url URL]

Download, verify (SHA-1) and extract fma_metadata.zip and fma_<subset>.zip.

  small|medium|large|full  subset to fetch (default: small; 7.2 GiB, 22 GiB, 93 GiB, 879 GiB)
  --data-dir DIR           destination folder (default: data)
  --base-url URL           server to fetch from (default: https://os.unil.cloud.switch.ch/fma/)
  -h, --help               show this help

Environment: FMA_BASE_URL, FMA_DATA_DIR, FMA_SHA1_{METADATA,SMALL,MEDIUM,LARGE,FULL},
FMA_RETRIES, FMA_RETRY_DELAY, FMA_EXTRACTOR (auto|7z|python), FMA_PYTHON.
Reruns resume interrupted downloads and skip parts that are already complete.
EOF
}

die() {
    echo "error: $*" >&2
    exit 1
}

usage_error() {
    echo "error: $*" >&2
    usage >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# Arguments and settings

subset=""
data_dir="${FMA_DATA_DIR:-data}"
base_url="${FMA_BASE_URL:-$DEFAULT_BASE_URL}"

while (($# > 0)); do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --data-dir | --base-url)
            (($# >= 2)) || usage_error "option $1 needs a value"
            [[ -n "$2" ]] || usage_error "option $1 needs a non-empty value"
            if [[ "$1" == --data-dir ]]; then data_dir="$2"; else base_url="$2"; fi
            shift 2
            ;;
        --data-dir=*)
            data_dir="${1#--data-dir=}"
            [[ -n "$data_dir" ]] || usage_error "option --data-dir needs a non-empty value"
            shift
            ;;
        --base-url=*)
            base_url="${1#--base-url=}"
            [[ -n "$base_url" ]] || usage_error "option --base-url needs a non-empty value"
            shift
            ;;
        small | medium | large | full)
            [[ -z "$subset" ]] || usage_error "only one subset can be given (got '$subset' and '$1')"
            subset="$1"
            shift
            ;;
        -*)
            usage_error "unknown option: $1"
            ;;
        *)
            usage_error "unknown subset: '$1' (expected small, medium, large or full)"
            ;;
    esac
done
subset="${subset:-small}"
[[ "$base_url" == */ ]] || base_url="$base_url/"

retries="${FMA_RETRIES:-5}"
retry_delay="${FMA_RETRY_DELAY:-10}"
extractor="${FMA_EXTRACTOR:-auto}"
[[ "$retries" =~ ^[1-9][0-9]*$ ]] || usage_error "FMA_RETRIES must be a positive integer (got '$retries')"
[[ "$retry_delay" =~ ^[0-9]+([.][0-9]+)?$ ]] ||
    usage_error "FMA_RETRY_DELAY must be a number of seconds (got '$retry_delay')"
case "$extractor" in
    auto | 7z | python) ;;
    *) usage_error "FMA_EXTRACTOR must be auto, 7z or python (got '$extractor')" ;;
esac

# Expected SHA-1 and official size of a part ("metadata" or a subset name).
expected_sha1() {
    local sum
    case "$1" in
        metadata) sum="${FMA_SHA1_METADATA:-f0df49ffe5f2a6008d7dc83c6915b31835dfe733}" ;;
        small) sum="${FMA_SHA1_SMALL:-ade154f733639d52e35e32f5593efe5be76c6d70}" ;;
        medium) sum="${FMA_SHA1_MEDIUM:-c67b69ea232021025fca9231fc1c7c1a063ab50b}" ;;
        large) sum="${FMA_SHA1_LARGE:-497109f4dd721066b5ce5e5f250ec604dc78939e}" ;;
        full) sum="${FMA_SHA1_FULL:-0f0ace23fbe9ba30ecb7e95f763e435ea802b8ab}" ;;
    esac
    sum="$(printf '%s' "$sum" | tr 'A-F' 'a-f')"
    [[ "$sum" =~ ^[0-9a-f]{40}$ ]] ||
        usage_error "FMA_SHA1_$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]') is not a 40-digit hex SHA-1: '$sum'"
    printf '%s\n' "$sum"
}

official_size() {
    case "$1" in
        metadata) echo "342 MiB" ;;
        small) echo "7.2 GiB" ;;
        medium) echo "22 GiB" ;;
        large) echo "93 GiB" ;;
        full) echo "879 GiB" ;;
    esac
}

# Validate all checksums before doing anything (exits 2 on a malformed override).
metadata_sha1="$(expected_sha1 metadata)"
subset_sha1="$(expected_sha1 "$subset")"

# ---------------------------------------------------------------------------------------------
# Tools

command -v curl >/dev/null 2>&1 || die "curl is required but was not found in PATH"

sha1_of() {
    # Read from stdin so that odd file names cannot change the output format.
    if command -v sha1sum >/dev/null 2>&1; then
        sha1sum <"$1" | awk '{print $1}'
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 1 <"$1" | awk '{print $1}'
    elif command -v openssl >/dev/null 2>&1; then
        openssl dgst -sha1 <"$1" | awk '{print $NF}'
    else
        die "no SHA-1 tool found (need sha1sum, shasum or openssl)"
    fi
}
if ! command -v sha1sum >/dev/null 2>&1 && ! command -v shasum >/dev/null 2>&1 &&
    ! command -v openssl >/dev/null 2>&1; then
    die "no SHA-1 tool found (need sha1sum, shasum or openssl)"
fi

file_size() {
    if [[ -f "$1" ]]; then wc -c <"$1" | tr -d ' \t'; else echo 0; fi
}

sevenzip=""
python=""
find_python() {
    local candidate
    if [[ -n "${FMA_PYTHON:-}" ]]; then
        "$FMA_PYTHON" -c 'import sys, zipfile, bz2; sys.exit(sys.version_info[0] != 3)' >/dev/null 2>&1 ||
            die "FMA_PYTHON=$FMA_PYTHON is not a working Python 3 with the zipfile and bz2 modules"
        python="$FMA_PYTHON"
        return 0
    fi
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys, zipfile, bz2; sys.exit(sys.version_info[0] != 3)' >/dev/null 2>&1; then
            python="$candidate"
            return 0
        fi
    done
    return 1
}
find_7z() {
    local candidate
    for candidate in 7z 7za 7zz; do
        if command -v "$candidate" >/dev/null 2>&1; then
            sevenzip="$candidate"
            return 0
        fi
    done
    return 1
}
# Check for an extractor now rather than after a multi-GB download.
case "$extractor" in
    7z) find_7z || die "FMA_EXTRACTOR=7z but none of 7z, 7za, 7zz is installed" ;;
    python) find_python || die "FMA_EXTRACTOR=python but no Python 3 with zipfile and bz2 was found" ;;
    auto) find_7z || find_python ||
        die "nothing to extract the zips with: install 7-Zip (p7zip) or Python 3 (with the bz2 module)" ;;
esac

# ---------------------------------------------------------------------------------------------
# Cleanup of a half-done extraction when the script stops for any reason.

extract_tmp=""
cleanup() {
    if [[ -n "$extract_tmp" && -d "$extract_tmp" ]]; then
        rm -rf -- "$extract_tmp"
    fi
}
trap cleanup EXIT
trap 'echo "error: interrupted; rerun the same command to resume" >&2; exit 130' INT
trap 'echo "error: terminated; rerun the same command to resume" >&2; exit 143' TERM

mkdir -p -- "$data_dir" || die "cannot create data directory '$data_dir'"
data_dir="$(cd -- "$data_dir" && pwd -P)" || die "cannot enter data directory"

# ---------------------------------------------------------------------------------------------
# Download

http_reason() {
    case "$1" in
        400) echo "Bad Request" ;;
        401) echo "Unauthorized" ;;
        403) echo "Forbidden" ;;
        404) echo "Not Found" ;;
        408) echo "Request Timeout" ;;
        410) echo "Gone" ;;
        416) echo "Range Not Satisfiable" ;;
        429) echo "Too Many Requests" ;;
        500) echo "Internal Server Error" ;;
        502) echo "Bad Gateway" ;;
        503) echo "Service Unavailable" ;;
        504) echo "Gateway Timeout" ;;
        *) echo "HTTP error" ;;
    esac
}

curl_reason() {
    case "$1" in
        6) echo "could not resolve host" ;;
        7) echo "could not connect" ;;
        18) echo "transfer closed before the file was complete" ;;
        22) echo "HTTP error" ;;
        23) echo "could not write the output file" ;;
        28) echo "timed out" ;;
        35) echo "TLS handshake failed" ;;
        52) echo "empty reply from server" ;;
        56) echo "connection broken while receiving data" ;;
        *) echo "curl exit status $1" ;;
    esac
}

# download URL PART: fetch URL into PART, resuming what PART already holds.
download() {
    local url="$1" part="$2" attempt=1 have rc code reason
    local -a progress=(--silent --show-error)
    if [[ -t 2 ]]; then progress=(--progress-bar); fi
    while :; do
        have="$(file_size "$part")"
        if ((have > 0)); then
            echo "  resuming at byte $have (HTTP Range request), attempt $attempt of $retries"
        else
            echo "  downloading, attempt $attempt of $retries"
        fi
        rc=0
        # Retries are done by this loop rather than curl's --retry so that each attempt resumes
        # from what the previous one wrote (curl's own retry discards partial data).
        code="$(curl "${progress[@]}" --location --fail --continue-at - \
            --connect-timeout 30 --speed-limit 1024 --speed-time 120 \
            --write-out '%{http_code}' --output "$part" -- "$url")" || rc=$?
        code="${code:-000}"
        if ((rc == 0)); then
            # 416 on a resume means PART already holds the whole file; the checksum decides.
            return 0
        fi
        if ((rc == 22)); then
            reason="HTTP $code $(http_reason "$code")"
            case "$code" in
                408 | 429 | 5??) ;;  # transient: retry
                *)
                    if [[ -f "$part" && ! -s "$part" ]]; then rm -f -- "$part"; fi
                    die "download failed: $url returned $reason"
                    ;;
            esac
        elif ((rc == 33)); then
            reason="server does not support resuming (Range)"
            rm -f -- "$part"
        else
            reason="$(curl_reason "$rc")"
            [[ "$code" == 000 ]] || reason="$reason, HTTP $code"
        fi
        if ((attempt >= retries)); then
            if [[ -s "$part" ]]; then
                die "download of $url failed after $attempt attempt(s): $reason; the $(file_size "$part") bytes received are kept in $part, rerun to resume"
            fi
            die "download of $url failed after $attempt attempt(s): $reason"
        fi
        echo "warning: attempt $attempt failed: $reason; retrying in ${retry_delay}s" >&2
        sleep "$retry_delay"
        attempt=$((attempt + 1))
    done
}

# ---------------------------------------------------------------------------------------------
# Extraction

# extract ZIP DEST: extract ZIP into the (empty) directory DEST, keeping paths.
extract() {
    local zip="$1" dest="$2" out
    if [[ -n "$sevenzip" ]]; then
        echo "  extracting with $sevenzip into $dest"
        if ! out="$("$sevenzip" x -y -o"$dest" -- "$zip" 2>&1)"; then
            printf '%s\n' "$out" | tail -n 20 >&2
            return 1
        fi
    else
        echo "  extracting with Python's zipfile into $dest"
        "$python" - "$zip" "$dest" <<'PYTHON'
import sys
import zipfile

zip_path, dest = sys.argv[1], sys.argv[2]
try:
    with zipfile.ZipFile(zip_path) as zf:
        members = zf.infolist()
        step = max(1, len(members) // 10)
        for i, info in enumerate(members, 1):
            zf.extract(info, dest)  # sanitises absolute paths and '..'
            if i % step == 0 or i == len(members):
                print(f"  {i}/{len(members)} files", flush=True)
except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
    sys.exit(f"{zip_path}: {exc}")
PYTHON
    fi
}

# ---------------------------------------------------------------------------------------------
# One part: metadata or the subset

# fetch_part NAME SHA1: make DIR/NAME (from NAME.zip) complete and verified.
fetch_part() {
    local name="$1" sha1="$2" what="$3"
    local url="${base_url}${name}.zip"
    local zip="$data_dir/$name.zip" part="$data_dir/$name.zip.part"
    local target="$data_dir/$name" marker="$data_dir/$name/.complete"
    local actual

    echo "== $name ($what)"
    if [[ -f "$marker" ]]; then
        if [[ "$(head -n 1 -- "$marker")" == "$sha1" ]]; then
            echo "  already done: $target is verified and extracted ($marker); nothing to do"
            return 0
        fi
        die "$target is marked complete for a different SHA-1 ($(head -n 1 -- "$marker"), expected $sha1); move it away and rerun"
    fi
    if [[ -e "$target" ]]; then
        die "$target exists but is not marked complete (no $marker); it may be a partial or manual extraction: move it away or delete it, then rerun"
    fi

    if [[ -f "$zip" ]]; then
        echo "  found $zip from an earlier run; not downloading it again"
    else
        echo "  from $url"
        echo "  to   $zip"
        download "$url" "$part"
        mv -f -- "$part" "$zip"
    fi

    echo "  verifying SHA-1 of $zip"
    actual="$(sha1_of "$zip")"
    if [[ "$actual" != "$sha1" ]]; then
        rm -f -- "$zip"
        die "checksum mismatch for $name.zip (SHA-1): expected $sha1, got $actual; the bad file was deleted, rerun to download it again"
    fi
    echo "  SHA-1 ok: $actual"

    extract_tmp="$data_dir/.$name.extracting"
    rm -rf -- "$extract_tmp"
    mkdir -p -- "$extract_tmp"
    extract "$zip" "$extract_tmp" || die "extraction of $zip failed; nothing was left in $target"
    [[ -d "$extract_tmp/$name" ]] ||
        die "$zip does not contain a top-level $name/ folder; nothing was left in $target"
    printf '%s\n' "$sha1" >"$extract_tmp/$name/.complete"
    mv -- "$extract_tmp/$name" "$target"
    rm -rf -- "$extract_tmp"
    extract_tmp=""
    echo "  done: $target"
}

echo "FMA download: fma_metadata + fma_$subset"
echo "  base URL: $base_url"
echo "  data dir: $data_dir"
echo "  official sizes: fma_metadata.zip $(official_size metadata), fma_$subset.zip $(official_size "$subset")" \
    "(several GB; extraction needs about as much again)"

fetch_part fma_metadata "$metadata_sha1" "metadata, $(official_size metadata)"
fetch_part "fma_$subset" "$subset_sha1" "audio, $(official_size "$subset")"

echo "All done: $data_dir/fma_metadata and $data_dir/fma_$subset are complete."
