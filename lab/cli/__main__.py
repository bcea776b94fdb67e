"""`python -m lab.cli`: the `wobble` command."""

from lab.cli import main_entry

main_entry()
