"""``unmapcheck hunt``: look for the bugs nobody wrote a scenario for.

Random scenarios (generate.py) over the model's mappings, syscalls, loads, stores and kernel
actors, placed with a bias to page-table boundaries, each explored under a fixed budget (DPOR
at preemption bounds 0 and 1, then PCT) with every invariant checked; a violating scenario is
shrunk (shrink.py) to a small one that still violates the same invariant and written out as a
scenario TOML file with its trace and HTML report; findings are de-duplicated by the
invariant and the two racing kernel functions (campaign.py). A guided campaign also keeps
the scenarios that reached a kernel step, edge or race nothing before them had (signal.py)
and makes half of its scenarios by editing those (evolve.py). The scenarios are data
(scenario.py builds the same TOML a user writes); the campaign is seeded and counted in model
steps, so the same seed and budget give the same findings on any machine.
"""
