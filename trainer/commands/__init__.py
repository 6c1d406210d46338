"""One module per ``stainless-train`` subcommand: ``add_parser(sub)`` and ``run(args) -> int``."""
