"""One module per ``recstats`` sub-command, each with ``run(args) -> int``."""
