"""Bounds on input every layer reads the same way, so the engine, the policy and the egress
worker cannot disagree about what is acceptable."""

# A label file (``.classification``) holds one word: the engine reads at most this much of
# one, the policy parses at most this much, the egress worker refuses a bigger one.
MAX_LABEL_FILE_BYTES = 1024

# --include/--exclude: a request carries at most this many rules, each at most this long, so a
# request cannot make every key of a listing cost an unbounded regular-expression match.
MAX_FILTER_RULES = 64
MAX_FILTER_PATTERN_CHARS = 512
