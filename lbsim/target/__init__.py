"""Your own stack: a target file, its requests, and the user's running containers.

- :mod:`lbsim.target.schema` / :mod:`lbsim.target.loader`: the target file
  (which compose project, which services, the entry point, one HTTP request
  per scenario class), loaded with the scenario's strict, located errors.
- :mod:`lbsim.target.requests`: a scenario's arrival trace turned into the
  target's HTTP requests (same times, classes, clients; placeholders drawn
  from seeded streams).
- :mod:`lbsim.target.http`: the rendered request and the planned request the
  load generator sends (:mod:`lbsim.validation.loadgen`).
- :mod:`lbsim.target.containers`: attaching to the running project
  (:func:`~lbsim.target.containers.attach` → :class:`~lbsim.target.handle.TargetHandle`),
  with a clear :class:`~lbsim.target.containers.TargetError` for whatever is
  missing; :mod:`lbsim.target.inspection` reads the containers' shape.

Nothing is imported here: each module is imported where it is used.
"""
