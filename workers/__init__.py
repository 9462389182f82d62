"""The steps of a staging or an egress as plain functions; the Celery tasks (issue
"Control plane and node workers") will be thin wrappers around them, and the embedded
client calls the same functions in-process, so both modes run one code path."""
