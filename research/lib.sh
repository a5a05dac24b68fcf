# research/lib.sh: the shell the research scripts share, sourced first by each of them
# (`. "$(dirname "$0")/lib.sh"`; research/recipe-proxy/*.sh source ../lib.sh). Not run on its own.
# Sourcing it turns on strict mode, enters the repository root (so a script works from any working
# directory and names paths from the root) and defines:
#   me, show_help, usage_error MSG  the script's name; print its header comment, exit 0; "me: MSG", exit 2
#   fer_data                        the FER-2013 zip: FER_DATA, else ../shared/data/fer2013.zip
#   fer_setup                       runs scripts/setup (installs, builds; shown); fer=.build/release/fer
#   fer_ready                       fer=${FER_BIN:-.build/release/fer}, quietly scripts/setup if missing
#   mpi_as_root                     lets mpirun run as root (Open MPI refuses otherwise)
#   cores, cpu_name                 the machine's cores (not capped by OMP_NUM_THREADS); its CPU model
#   bench_1rank BIN ARGS...         BIN bench ARGS --json: 1 rank with all cores' threads
#   bench_ranks N ARGS...           fer bench ARGS --json as N ranks (scripts/launch: cores / N threads each)
#   field KEY, median               a number field of the JSON on stdin; the median of numbers on stdin
#   sample KEY VALUE, med KEY       alternated benchmarks: keep each rep's VALUE under KEY; their median
#   start_mps                       the CUDA MPS daemon where there is one (GPU scripts): "MPS on"/"MPS off"
set -euo pipefail
me="$(basename "$0")"
script="$(cd "$(dirname "$0")" && pwd)/$me"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The header comment after the #! line, without its "# " (a script's usage; --help prints it).
show_help() { sed -n '2,/^[^#]/p' "$script" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0; }
usage_error() { echo "$me: $*" >&2; exit 2; }

fer_data="${FER_DATA:-../shared/data/fer2013.zip}"
fer_setup() { scripts/setup; fer=.build/release/fer; }
fer_ready() { fer="${FER_BIN:-.build/release/fer}"; [ -x "$fer" ] || scripts/setup >/dev/null; }
mpi_as_root() { export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; }

cores="$(env -u OMP_NUM_THREADS nproc)"   # plain nproc obeys OMP_NUM_THREADS
cpu_name() { lscpu | sed -n 's/^Model name: *//p' | head -1; }

bench_1rank() { OMP_NUM_THREADS=$cores "$1" bench "${@:2}" --json; }
bench_ranks() { FER_BIN="$fer" scripts/launch -np "$1" bench "${@:2}" --json; }

# A number field of pretty JSON ("key" : 1.5, fer's) or compact JSON ("key": 1.5, Python's json; one
# object a line: split it at commas first).
field() { grep "\"$1\"" | head -1 | sed -E 's/.*"'"$1"'" *: *([0-9.eE+-]+).*/\1/'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# Every side of a comparison is measured once per rep, rep after rep, so the shared machine's noise hits
# all sides alike; each side's median is what gets compared.
declare -A samples=()
sample() { samples[$1]+="$2 "; }
med() { tr ' ' '\n' <<<"${samples[$1]:-}" | grep . | median; }

start_mps() { nvidia-cuda-mps-control -d 2>/dev/null && echo "MPS on" || echo "MPS off"; }
