"""The YAML files pharmacists edit: read keeping every value's line, with errors in plain words."""
