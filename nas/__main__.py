"""Allow ``python -m nas``."""

from nas.cli import main

main()
