"""``python -m lbsim``: the ``lbsim`` command."""

from lbsim.cli.app import main

if __name__ == "__main__":
    main()
