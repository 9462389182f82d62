"""Exit codes, chosen here and nowhere else."""

EXIT_OK = 0
EXIT_FAILED = 1  # the transfer failed
EXIT_BAD_INPUT = 2  # bad usage or bad input: an unsafe key, a missing source, a bad policy file
EXIT_DENIED = 3  # the policy refused; nothing moved
EXIT_TAMPERED = 4  # the audit chain is broken
EXIT_INTERRUPTED = 130
