"""crs-rules: the severe CRS and sepsis protocol as versioned, validated YAML rules."""

__version__ = "0.1.0"
