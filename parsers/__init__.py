"""llmbench's built-in log-format parsers (installed as ``llmbench.parsers``)."""
