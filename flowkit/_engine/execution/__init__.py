"""Where bodies run: inline and on the loop, the caller's thread, remote workers,
processes and the fork server, children and streams."""
