"""The ``lbsim`` command line (:mod:`lbsim.cli.app`)."""

#: this process is the ``lbsim`` program (set by :func:`lbsim.cli.app.main`), not a
#: caller running a command inside its own process (a test's CliRunner, a notebook)
STANDALONE = False
