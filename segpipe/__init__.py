"""segpipe: audience files in, trusted segments out."""
