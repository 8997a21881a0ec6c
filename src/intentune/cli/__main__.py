"""``python -m intentune.cli``: the same command line as the ``intentune`` script."""

from . import app

if __name__ == "__main__":  # pragma: no cover
    app()
