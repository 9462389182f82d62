"""Bounds on input every layer reads the same way, so the engine, the policy and the egress
worker cannot disagree about what is acceptable."""

# A label file (``.classification``) holds one word: the engine reads at most this much of
# one, the policy parses at most this much, the egress worker refuses a bigger one.
MAX_LABEL_FILE_BYTES = 1024
