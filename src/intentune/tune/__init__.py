"""Hyperparameter search with Optuna (``intentune tune``): each trial fine-tunes one config, trials that fall behind
are pruned on their intermediate validation accuracy, and the best config is written out, ready for
``intentune train --config``.

A search space maps config keys to what to try:

- a list: the choices, for example ``"train.batch_size": [8, 16, 32]``;
- a table ``{"low": 1e-5, "high": 3e-4, "log": True}`` (``step`` optional): a range, of integers when the config
  key holds an integer, else of floats (``log`` samples it log-uniformly);
- a single value: the same in every trial (how to take a key out of the default search).

Any config key may be searched (``train.weight_decay``, ``model.dropout``, ...). ``intentune tune --space FILE`` reads
a space from TOML, sectioned like the config (``[train]`` then ``batch_size = [16, 32]``), and
``--param train.epochs={low=2,high=4}`` sets one key; both are laid over :func:`default_space`.

``intentune tune --storage sqlite:///PATH.db`` (or a database URL, or ``journal:PATH``; see :mod:`.storage`) keeps the
study outside the process, so several workers, on one machine or many, fill one study.
"""

from .report import report_markdown
from .search import TRIAL_ERRORS, TuneResult, tune
from .space import apply_params, check_space, default_space, load_space, parse_param

__all__ = ["TRIAL_ERRORS", "TuneResult", "apply_params", "check_space", "default_space", "load_space",
           "parse_param", "report_markdown", "tune"]  # fmt: skip
