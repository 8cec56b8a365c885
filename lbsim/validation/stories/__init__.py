"""Validation stories: the failures users come with, replayed live and simulated.

- :mod:`~lbsim.validation.stories.harness`: variants, paired repetitions, count verdicts
- :mod:`~lbsim.validation.stories.sides`: the live stack and the model
- :mod:`~lbsim.validation.stories.catalogue`: the stories (``lbsim story NAME``)
- :mod:`~lbsim.validation.stories.report`: ``story.json`` and ``story.md``
- :mod:`~lbsim.validation.stories.galera`: a slow Galera node, the cluster's counters
  (report: :mod:`~lbsim.validation.stories.galera_report`)
- :mod:`~lbsim.validation.stories.conflicts`: hot rows, many writers: 1213 and the
  nodes' conflict counters
- :mod:`~lbsim.validation.stories.readback`: reading back your own write, with and
  without sync_wait (report: :mod:`~lbsim.validation.stories.readback_report`)
"""
