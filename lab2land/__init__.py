"""lab2land: publish parameterized notebooks as versioned static reports and Voila dashboards.

In a notebook, ``from lab2land import record`` records a metric of the run (see
:mod:`lab2land.metrics`); importing it loads nothing beyond the standard library.
"""

from .metrics import record

__version__ = "0.1.0"
__all__ = ["__version__", "record"]
