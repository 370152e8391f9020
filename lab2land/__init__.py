"""lab2land: publish parameterized notebooks as versioned static reports and Voila dashboards."""

__version__ = "0.1.0"
