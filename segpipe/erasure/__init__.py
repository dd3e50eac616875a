"""Erasure (`segpipe forget`): a person removed from everything segpipe keeps (SPEC 8)."""
